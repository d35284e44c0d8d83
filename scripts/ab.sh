#!/usr/bin/env bash
# Compares two builds of the origin in one sitting: both serve the same PostgreSQL and Redis
# (each under its own CACHE_NAMESPACE), and the same load is alternated against each, so the
# machine's noise falls on both alike. Needs `scripts/up.sh` (services, data, a trained model)
# and wrk.
#
#   git worktree add /tmp/old <commit> && (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target \
#       cargo build --release -p origin)
#   cargo build --release -p origin -p loadgen
#   scripts/ab.sh /tmp/old-target/release/origin target/release/origin [rounds]
#
# Prints, per round and side: wrk on a cached GET /movies/1 (16 connections, 5 s) and loadgen's
# full mix (8 connections, 5 s warm-up + 15 s). The older binary is started with
# MIGRATE_ON_START=false: sqlx refuses to start against migrations newer than its own.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OLD=$1 NEW=$2 ROUNDS=${3:-3}
LOADGEN=${LOADGEN:-target/release/loadgen}
RUN=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null || true; done; rm -rf "$RUN"; }
trap cleanup EXIT

start() { # binary port namespace
  ORIGIN_LISTEN=127.0.0.1:$2 CACHE_NAMESPACE=$3 MIGRATE_ON_START=false \
    setsid "$1" serve >"$RUN/$3.log" 2>&1 </dev/null &
  pids+=($!)
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$2/movies/1" && return; sleep 0.1; done
  echo "$1 did not start:"; tail -5 "$RUN/$3.log"; exit 1
}
start "$OLD" 8181 abold
start "$NEW" 8182 abnew
sleep 5 # start-up warming

for round in $(seq "$ROUNDS"); do
  for side in old:8181 new:8182; do
    name=${side%%:*} port=${side##*:}
    wrk_line=$(wrk -t2 -c16 -d5s --latency "http://127.0.0.1:$port/movies/1" |
      awk '/Requests\/sec/ {rps=$2} / 99%/ {p99=$2} END {printf "%s req/s, P99 %s", rps, p99}')
    mix=$("$LOADGEN" --target "http://127.0.0.1:$port" --connections 8 --warmup 5 --duration 15 --json 2>/dev/null |
      python3 -c 'import json,sys; t=json.load(sys.stdin)["total"]; print("%.0f req/s, P50 %s ms, P95 %s ms, P99 %s ms, hit rate %.3f" % (t["throughput"], t["p50_ms"], t["p95_ms"], t["p99_ms"], t["hit_rate"]))')
    echo "round $round $name: cached movie (wrk) $wrk_line; full mix (loadgen) $mix"
  done
done
