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
# Prints, per round and side:
# - the mix of SPEC section 1 under wrk (recommendations 35%, movies 35%, popular 15%,
#   profiles 10%, genre lists 4%, ratings 1%; 32 connections, 15 s; `loadgen --wrk-script`),
#   and the same mix without ratings;
# - a cached recommendation at one connection (wrk, 5 s): P50 and P99;
# - loadgen's full mix (8 connections, 5 s warm-up + 15 s), which also reports the hit rate.
# The older binary is started with MIGRATE_ON_START=false: sqlx refuses to start against
# migrations newer than its own. AB_DURATION changes the wrk runs' length.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OLD=$1 NEW=$2 ROUNDS=${3:-3}
LOADGEN=${LOADGEN:-target/release/loadgen}
DURATION=${AB_DURATION:-15}
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

MIX=recommendations=35,movie=35,popular=15,profile=10,genre_top=4,rating=1
"$LOADGEN" --target http://127.0.0.1:8181 --mix "$MIX" --wrk-script "$RUN/mix.lua" 2>/dev/null
"$LOADGEN" --target http://127.0.0.1:8181 --mix "${MIX%,rating=1}" --wrk-script "$RUN/reads.lua" 2>/dev/null
TOKEN=$("$NEW" token --user 1)

wrk_summary() { # wrk output on stdin
  awk '/Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} /Non-2xx/ {bad=$NF}
       END {printf "%s req/s, P50 %s, P99 %s%s", rps, p50, p99, (bad ? ", " bad " non-2xx" : "")}'
}

for round in $(seq "$ROUNDS"); do
  for side in old:8181 new:8182; do
    name=${side%%:*} port=${side##*:}
    url=http://127.0.0.1:$port
    mix=$(wrk -t2 -c32 -d"${DURATION}s" --latency -s "$RUN/mix.lua" "$url" | wrk_summary)
    reads=$(wrk -t2 -c32 -d"${DURATION}s" --latency -s "$RUN/reads.lua" "$url" | wrk_summary)
    one=$(wrk -t1 -c1 -d5s --latency -H "Authorization: Bearer $TOKEN" "$url/users/1/recommendations" | wrk_summary)
    lg=$("$LOADGEN" --target "$url" --mix "$MIX" --connections 8 --warmup 5 --duration 15 --json 2>/dev/null |
      python3 -c 'import json,sys; t=json.load(sys.stdin)["total"]; print("%.0f req/s, P50 %s ms, P99 %s ms, hit rate %.3f" % (t["throughput"], t["p50_ms"], t["p99_ms"], t["hit_rate"]))')
    echo "round $round $name: mix (wrk, 32 conn) $mix | reads only $reads | cached recommendation, 1 conn: $one | loadgen mix, 8 conn: $lg"
  done
done
