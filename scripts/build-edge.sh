#!/usr/bin/env bash
# Builds the edge worker to Wasm with worker-build (profile `edge`: small, LTO), installing
# the toolchain first when it is missing (scripts/edge-toolchain.sh). Output: edge/build/
# (index.js + index_bg.wasm), which wrangler.toml's `main` points at. Prints the Wasm size.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval "$(scripts/edge-toolchain.sh)"
cd edge
worker-build --profile edge >&2
wasm=build/index_bg.wasm
raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
echo "edge: $wasm $raw bytes ($gz gzipped)" >&2
