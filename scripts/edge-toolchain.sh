#!/usr/bin/env bash
# edge-toolchain.sh - install what building and running the edge worker (a Cloudflare Worker
# in Rust, built by `worker-build`, run locally by `wrangler dev` in workerd) needs, only
# where it is missing or at the wrong version, then hand out the environment the build needs.
# A warm machine gets through it in about 0.1 s; a cold one takes about 12 min on 2 cores (two
# `cargo install`s).
#
# Usage:
#   source scripts/edge-toolchain.sh        install what is missing, then export the variables
#                                           into the calling shell (also puts the cargo bin
#                                           folder on PATH if it is not there)
#   scripts/edge-toolchain.sh               install what is missing, then print the variables
#                                           as `export NAME=value` lines on stdout
#   eval "$(scripts/edge-toolchain.sh)"     the same as sourcing, from any shell or script
#   scripts/edge-toolchain.sh --env         print the export lines only, install nothing
#   scripts/edge-toolchain.sh --check       install nothing; exit 1 and name what is missing
# Progress and errors go to stderr; stdout carries only the export lines.
#
# What it installs, each only when missing or at another version:
#   - rustup target wasm32-unknown-unknown
#   - worker-build 0.8.7            cargo install --locked
#   - wasm-bindgen-cli 0.2.130      cargo install without --locked (its published lock file pins
#                                   webpki-roots 1.0.11, which the index no longer offers); brings
#                                   wasm-bindgen-test-runner too; must equal the workspace's
#                                   `wasm-bindgen = "=0.2.130"` exactly
#   - node_modules/ from package.json + package-lock.json (wrangler 4.86.0, the last one that
#     runs on Node 20, with esbuild and workerd; binaryen 132.0.0 for wasm-opt; uPlot 1.6.32 for
#     the origin's dashboard, bundled by scripts/build-dashboard.sh) via `npm ci`,
#     when node_modules/.bin/wrangler is missing or package-lock.json is newer than the last
#     install (node_modules/.package-lock.json)
#
# Variables handed out. Without them worker-build downloads wasm-bindgen and wasm-opt itself
# from hosts that are unreachable here (it retries for ~30 s, then fails) and esbuild 0.28.2
# by a hard-wired URL into ~/.cache/worker-build; a *_BIN path that does not exist falls back
# to that download too. wrangler would otherwise send metrics and check for updates:
#   WASM_BINDGEN_BIN  WASM_OPT_BIN  ESBUILD_BIN
#   WRANGLER_SEND_METRICS=false  WRANGLER_SEND_ERROR_REPORTS=false
#   WRANGLER_HIDE_BANNER=true  CLOUDFLARE_CF_FETCH_ENABLED=false
#
# Environment: CARGO_HOME / CARGO_INSTALL_ROOT are honoured for where the cargo tools live.

# Sourced: do the work in a child bash (so `set -euo pipefail` and `exit` stay out of the
# caller's shell), then export what it printed.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
  if __edge_toolchain_env="$(bash "${BASH_SOURCE[0]}" "$@")"; then
    eval "$__edge_toolchain_env"
    unset __edge_toolchain_env
    __edge_toolchain_bin="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin"
    case ":$PATH:" in
      *":$__edge_toolchain_bin:"*) ;;
      *) export PATH="$__edge_toolchain_bin:$PATH" ;;
    esac
    unset __edge_toolchain_bin
    return 0
  else
    __edge_toolchain_status=$?
    unset __edge_toolchain_env
    return "$__edge_toolchain_status"
  fi
fi

set -euo pipefail

WORKER_BUILD_VERSION=0.8.7
WASM_BINDGEN_VERSION=0.2.130
WASM_TARGET=wasm32-unknown-unknown

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cargo_bin="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin"

mode=install
case "${1:-}" in
  "") ;;
  --env) mode=env ;;
  --check) mode=check ;;
  -h|--help) sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) echo "edge-toolchain: unknown argument: $1 (try --help)" >&2; exit 2 ;;
esac

say() { echo "edge-toolchain: $*" >&2; }

# Version printed by "NAME X.Y.Z" style --version output, empty when the tool is missing.
tool_version() {
  [[ -x $1 ]] || return 0
  "$1" --version 2>/dev/null | awk 'NR==1 {print $NF}' || true
}

target_installed() {
  rustup target list --installed 2>/dev/null | grep -qx "$WASM_TARGET"
}

node_modules_fresh() {
  [[ -x $repo_root/node_modules/.bin/wrangler ]] \
    && [[ -x $repo_root/node_modules/.bin/wasm-opt ]] \
    && [[ -x $repo_root/node_modules/.bin/esbuild ]] \
    && [[ -f $repo_root/node_modules/uplot/package.json ]] \
    && [[ -f $repo_root/node_modules/.package-lock.json ]] \
    && ! [[ $repo_root/package-lock.json -nt $repo_root/node_modules/.package-lock.json ]]
}

print_env() {
  printf 'export %s=%q\n' \
    WASM_BINDGEN_BIN "$cargo_bin/wasm-bindgen" \
    WASM_OPT_BIN "$repo_root/node_modules/.bin/wasm-opt" \
    ESBUILD_BIN "$repo_root/node_modules/.bin/esbuild" \
    WRANGLER_SEND_METRICS false \
    WRANGLER_SEND_ERROR_REPORTS false \
    WRANGLER_HIDE_BANNER true \
    CLOUDFLARE_CF_FETCH_ENABLED false
}

if [[ $mode == env ]]; then
  print_env
  exit 0
fi

missing=()
target_installed || missing+=("rustup target $WASM_TARGET")
[[ $(tool_version "$cargo_bin/worker-build") == "$WORKER_BUILD_VERSION" ]] \
  || missing+=("worker-build $WORKER_BUILD_VERSION")
[[ $(tool_version "$cargo_bin/wasm-bindgen") == "$WASM_BINDGEN_VERSION" ]] \
  || missing+=("wasm-bindgen-cli $WASM_BINDGEN_VERSION")
node_modules_fresh || missing+=("node_modules (npm ci)")

if [[ $mode == check ]]; then
  if ((${#missing[@]})); then
    for m in "${missing[@]}"; do say "missing: $m"; done
    exit 1
  fi
  print_env
  exit 0
fi

for m in "${missing[@]}"; do
  case $m in
    "rustup target"*)
      say "adding rustup target $WASM_TARGET"
      rustup target add "$WASM_TARGET" >&2
      ;;
    worker-build*)
      say "installing worker-build $WORKER_BUILD_VERSION (cargo install, about 5 min)"
      cargo install --quiet --force --locked worker-build --version "$WORKER_BUILD_VERSION" >&2
      ;;
    wasm-bindgen-cli*)
      say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (cargo install, about 5 min)"
      # No --locked: the lock file published with 0.2.130 pins a webpki-roots version that
      # the index no longer offers, so resolution fails.
      cargo install --quiet --force wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" >&2
      ;;
    node_modules*)
      say "npm ci (wrangler, esbuild, workerd, binaryen, uplot)"
      (cd "$repo_root" && npm ci --quiet --no-audit --no-fund >&2)
      touch "$repo_root/node_modules/.package-lock.json"
      ;;
  esac
done

# Verify: fail loudly here rather than half-way through a build.
[[ $(tool_version "$cargo_bin/worker-build") == "$WORKER_BUILD_VERSION" ]] \
  || { say "worker-build $WORKER_BUILD_VERSION not found in $cargo_bin after install"; exit 1; }
[[ $(tool_version "$cargo_bin/wasm-bindgen") == "$WASM_BINDGEN_VERSION" ]] \
  || { say "wasm-bindgen $WASM_BINDGEN_VERSION not found in $cargo_bin after install"; exit 1; }
node_modules_fresh || { say "node_modules incomplete after npm ci"; exit 1; }

print_env
