#!/usr/bin/env bash
# Builds the origin's dashboard page (GET /admin/dashboard): bundles origin/dashboard/src
# (plain JavaScript modules and uPlot, from node_modules) with esbuild into
# origin/dashboard/dist/dashboard.js and dashboard.css, which the next `cargo build` of the
# origin embeds in the binary (origin/build.rs). Nothing is fetched at run time.
#
# Installs node_modules first when it is missing or older than package-lock.json (`npm ci`,
# as scripts/edge-toolchain.sh does, without the edge's cargo tools). Writes into a temporary
# folder and then moves both files in, so a failed build leaves the previous bundle whole.
# Prints the sizes. About a second.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! [[ -x node_modules/.bin/esbuild && -f node_modules/uplot/package.json \
        && -f node_modules/.package-lock.json ]] \
   || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "build-dashboard: npm ci (uPlot, esbuild, and the edge's tools)" >&2
  npm ci --quiet --no-audit --no-fund >&2
  touch node_modules/.package-lock.json
fi

src=origin/dashboard/src
dist=origin/dashboard/dist
tmp=$(mktemp -d origin/dashboard/.dist-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
node_modules/.bin/esbuild "$src/main.mjs" --bundle --minify --format=iife --target=es2020 \
  --legal-comments=none --log-level=warning --outfile="$tmp/dashboard.js"
mkdir -p "$dist"
mv "$tmp/dashboard.css" "$dist/dashboard.css"
mv "$tmp/dashboard.js" "$dist/dashboard.js"
for f in "$dist/dashboard.js" "$dist/dashboard.css"; do
  echo "dashboard: $f $(stat -c %s "$f") bytes ($(gzip -9 -c "$f" | wc -c) gzipped)" >&2
done
