#!/usr/bin/env bash
# Compares the uncached requests of two origin builds in one sitting: alternately, each build
# serves the MovieLens-25M database (the one scripts/scale.sh creates) on a fresh
# CACHE_NAMESPACE with no warming, and scripts/uncached.py asks the same 300 random users and
# movies of each (the same seed per round, the order of the builds swapped every round, since
# PostgreSQL's page cache favours whichever reads a seed's users second). Prints uncached.py's
# report per round and build: P50/P95/P99 of each request and the mean of each part of a
# recommendation's computation (read, solve, score, select, render).
#
#   git worktree add /tmp/old <commit> && (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target \
#       cargo build --release -p origin)
#   cargo build --release -p origin
#   scripts/ab-uncached.sh /tmp/old-target/release/origin target/release/origin [rounds]
#
# Needs scripts/services.sh up (PostgreSQL, Redis) and the 25M database (scripts/scale.sh
# creates it). Environment: DATABASE_URL (the 25M database), AB_PORT (8091), AB_COUNT (300),
# AB_SEED (61: the first round's seed, then one more per round).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OLD=$1 NEW=$2 ROUNDS=${3:-3}
DB=${DATABASE_URL:-postgres://origin@127.0.0.1:${PG_PORT:-54329}/movies_25m}
PORT=${AB_PORT:-8091}
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; }
trap cleanup EXIT

run() { # binary seed
  DATABASE_URL=$DB ORIGIN_LISTEN=127.0.0.1:$PORT CACHE_NAMESPACE=ab-$RANDOM$RANDOM \
    WARM_ON_START=false MIGRATE_ON_START=false RUST_LOG=warn "$1" serve >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/ready" && break
    kill -0 "$pid" 2>/dev/null || { echo "$1 did not start" >&2; exit 1; }
    sleep 0.2
  done
  echo "=== $1, seed $2"
  scripts/uncached.py --base "http://127.0.0.1:$PORT" \
    --token "$(DATABASE_URL=$DB "$1" token --admin)" \
    --users 162000 --movies 62000 --count "${AB_COUNT:-300}" --seed "$2" | grep -v '^$'
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
}

for round in $(seq "$ROUNDS"); do
  seed=$((${AB_SEED:-61} + round - 1))
  if ((round % 2)); then run "$OLD" "$seed"; run "$NEW" "$seed"
  else run "$NEW" "$seed"; run "$OLD" "$seed"; fi
done
