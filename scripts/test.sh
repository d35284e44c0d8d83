#!/usr/bin/env bash
# Runs every test of the project against real services: the README's second command, and
# exactly what CI runs (.ci/run).
#
# Starts what is missing (PostgreSQL, Redis, Redis Cluster: scripts/services.sh; MovieLens:
# scripts/fetch-data.sh; the wasm32 target), checks formatting and lints (`cargo fmt --check`,
# clippy with `-D warnings`, the edge crate for wasm32), checks the alert rules with promtool
# (installing Debian's prometheus package when missing), builds, imports MovieLens 100K into a template
# database that each test copies (with a model trained on it), then runs:
#   1. unit tests of every crate and the end-to-end tests against the single Redis;
#   2. the end-to-end tests again against the Redis Cluster;
#   3. a wasm32 build of `shared`, and `wrangler deploy --dry-run` of the edge worker.
# The edge worker is built (scripts/build-edge.sh, installing its toolchain when missing) and
# the end-to-end tests run it in workerd through `wrangler dev`. The dashboard's page is bundled
# (scripts/build-dashboard.sh) before anything compiles the origin, which embeds it, and its
# JavaScript unit tests run (`node --test`).
# Services it started are stopped again at the end; services that were already running
# (a developer's `scripts/up.sh`) are left running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
PG_URL=${PG_URL:-postgres://origin@127.0.0.1:${PG_PORT:-54329}}
TEMPLATE_DB=movies_test_template

started_services=0
if ! scripts/services.sh status >/dev/null 2>&1; then
  started_services=1
fi

psql_admin() { psql "$PG_URL/postgres" -v ON_ERROR_STOP=1 -qAt "$@"; }

drop_test_databases() {
  for db in $(psql_admin -c "SELECT datname FROM pg_database WHERE datname LIKE 't\_%'" 2>/dev/null); do
    psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
}

cleanup() {
  local status=$?
  if [[ $started_services == 1 ]]; then
    scripts/services.sh down >/dev/null 2>&1 || true
  else
    drop_test_databases
  fi
  exit $status
}
trap cleanup EXIT

echo "== services"
scripts/services.sh up
scripts/fetch-data.sh
# Headless Chromium and ChromeDriver for the browser test (tests/api/browser.rs): Debian's
# packages, the same build of both.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  sudo=; [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver
fi
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
# promtool, for the alert rules (ops/prometheus): Debian's prometheus package.
if ! command -v promtool >/dev/null; then
  sudo=; [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y prometheus
fi

echo "== the dashboard's page (bundled before the origin compiles: it embeds it)"
scripts/build-dashboard.sh
node --test origin/dashboard/test

echo "== style and lints (rustfmt; clippy with warnings as errors, the edge for wasm32)"
cargo fmt --all --check
cargo clippy --locked --workspace --exclude edge --all-targets -- -D warnings
cargo clippy --locked -p edge --target wasm32-unknown-unknown --all-targets -- -D warnings

echo "== alert rules (promtool: syntax, and their unit tests)"
promtool check rules ops/prometheus/alerts.yml
promtool test rules ops/prometheus/alerts.test.yml
promtool check config --syntax-only ops/prometheus/prometheus.yml

echo "== build"
cargo build --locked --workspace --exclude edge --all-targets
scripts/build-edge.sh

echo "== test data"
if [[ -z $(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$TEMPLATE_DB'") ]]; then
  psql_admin -c "CREATE DATABASE $TEMPLATE_DB"
fi
DATABASE_URL="$PG_URL/$TEMPLATE_DB" target/debug/origin import
# Trained once, and again when this build trains another kind of model than the one stored.
DATABASE_URL="$PG_URL/$TEMPLATE_DB" target/debug/origin train --if-outdated >/dev/null
drop_test_databases

if cargo nextest --version >/dev/null 2>&1; then
  run_tests() { cargo nextest run --locked --no-fail-fast "$@"; }
  # The same package set as the full run (so nothing is rebuilt), only the end-to-end tests.
  e2e_only=(--workspace --exclude edge -E 'package(tests)')
else
  run_tests() { cargo test --locked --no-fail-fast "$@"; }
  e2e_only=(-p tests)
fi

echo "== unit and end-to-end tests (single Redis)"
TEST_REDIS_MODE=single run_tests --workspace --exclude edge
echo "== end-to-end tests (Redis Cluster)"
TEST_REDIS_MODE=cluster run_tests "${e2e_only[@]}"
echo "== shared builds for wasm32; the worker bundles for deployment"
cargo build --locked -p shared --target wasm32-unknown-unknown
eval "$(scripts/edge-toolchain.sh --env)"
deploy_dir=$(mktemp -d)
node_modules/.bin/wrangler deploy --dry-run --outdir "$deploy_dir" 2>&1 | grep -E "Total Upload" || true
test -s "$deploy_dir/index.js" || { echo "wrangler deploy --dry-run produced no bundle"; exit 1; }
rm -rf "$deploy_dir"
echo "== all tests passed"
