#!/usr/bin/env bash
# scale.sh - the MovieLens-25M shape in the design's 256 MB of Redis (issue #15): one origin
# on the 25M database, a Redis of its own (maxmemory 256mb per process, allkeys-lru, emptied
# first), SPEC section 1's mix at 32 connections for MINUTES minutes after a 10 s warm-up, the
# timeline a row a minute (req/s, P99, the reads' hit rate), Redis's memory sampled, then each
# family's hit rate and bytes per entry from /admin/cache/stats.
#
#   scripts/scale.sh [single|cluster]
#
# Needs scripts/services.sh up (PostgreSQL) and release builds (cargo build --release -p
# origin -p loadgen). The 25M database (`movies_25m`) is created on first use: a synthetic
# MovieLens-25M-shaped import (162,000 users, 62,000 movies, 25M ratings; about 2 minutes)
# and a 64-factor model (about 5 minutes).
#
# Environment:
#   MINUTES=10          measured minutes
#   ORIGIN_BIN=target/release/origin  the build to measure (another worktree's, to compare;
#                       an older build than the database's migrations: MIGRATE_ON_START=false)
#   LOADGEN_ARGS=       more loadgen options, e.g. "--fault redis@300s+3s" to restart Redis
#                       (single) five minutes in
#   SCALE_DIR=/tmp/movierec-scale  the private Redis's files
#   PORT=8090  SCALE_REDIS_PORT=6395  SCALE_CLUSTER_BASE_PORT=7301
#   REDIS_MAXMEMORY=256mb
#   WARM_MAX_USERS=162000  WARM_MOVIES=62000  WARM_TIMEOUT_SECS=1800  WARM_CONCURRENCY=8
#                       the origin's start-up warming (see README, The application cache):
#                       every user's default recommendations and profile and every movie's
#                       metadata, which fit in 256 MB at this shape; the load starts when the
#                       warming has finished (its report is printed). WARM_MAX_USERS=0
#                       WARM_MOVIES=0 measures from a cache holding only the lists.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MODE=${1:-single}
MINUTES=${MINUTES:-10}
ORIGIN_BIN=${ORIGIN_BIN:-target/release/origin}
LOADGEN=${LOADGEN:-target/release/loadgen}
SCALE_DIR=${SCALE_DIR:-/tmp/movierec-scale}
PORT=${PORT:-8090}
REDIS_PORT=${SCALE_REDIS_PORT:-6395}
BASE=${SCALE_CLUSTER_BASE_PORT:-7301}
export REDIS_MAXMEMORY=${REDIS_MAXMEMORY:-256mb}
PG=postgres://origin@127.0.0.1:${PG_PORT:-54329}
DB=$PG/movies_25m

psql_admin() { psql -X -q -t -A "$PG/postgres" "$@"; }
if [[ -z $(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = 'movies_25m'") ]]; then
  echo "== creating the 25M database (import, then a 64-factor model)"
  psql_admin -c "CREATE DATABASE movies_25m"
  DATABASE_URL=$DB "$ORIGIN_BIN" import --synthetic --users 162000 --movies 62000 --ratings 25000000
  DATABASE_URL=$DB "$ORIGIN_BIN" train --factors 64
fi

mkdir -p "$SCALE_DIR"
origin_pid=
cleanup() {
  [[ -n $origin_pid ]] && kill "$origin_pid" 2>/dev/null && wait "$origin_pid" 2>/dev/null || true
  scripts/services.sh redis-stop "$SCALE_DIR/redis" >/dev/null 2>&1 || true
  scripts/services.sh cluster-stop "$SCALE_DIR/cluster" >/dev/null 2>&1 || true
}
trap cleanup EXIT

case $MODE in
single)
  scripts/services.sh redis-start "$SCALE_DIR/redis" "$REDIS_PORT" >/dev/null
  redis-cli -p "$REDIS_PORT" FLUSHALL >/dev/null
  REDIS_URL=redis://127.0.0.1:$REDIS_PORT
  fault_args=(--services-dir "$SCALE_DIR" --redis-port "$REDIS_PORT")
  ;;
cluster)
  scripts/services.sh cluster-start "$SCALE_DIR/cluster" "$BASE" >/dev/null
  for port in $(seq "$BASE" $((BASE + 5))); do redis-cli -p "$port" FLUSHALL >/dev/null 2>&1 || true; done
  REDIS_URL=$(seq "$BASE" $((BASE + 5)) | sed 's|^|redis://127.0.0.1:|' | paste -sd,)
  fault_args=(--services-dir "$SCALE_DIR" --cluster-base-port "$BASE")
  ;;
*) echo "usage: $0 [single|cluster]" >&2; exit 2 ;;
esac

echo "== origin ($ORIGIN_BIN) on 127.0.0.1:$PORT, Redis $MODE ($REDIS_MAXMEMORY a process)"
export WARM_MAX_USERS=${WARM_MAX_USERS:-162000} WARM_MOVIES=${WARM_MOVIES:-62000}
export WARM_TIMEOUT_SECS=${WARM_TIMEOUT_SECS:-1800} WARM_CONCURRENCY=${WARM_CONCURRENCY:-8}
DATABASE_URL=$DB REDIS_MODE=$MODE REDIS_URL=$REDIS_URL ORIGIN_LISTEN=127.0.0.1:$PORT \
  MIGRATE_ON_START=${MIGRATE_ON_START:-true} "$ORIGIN_BIN" serve >"$SCALE_DIR/origin.log" 2>&1 </dev/null &
origin_pid=$!
for _ in $(seq 300); do
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/ready" && break
  kill -0 "$origin_pid" 2>/dev/null || { tail -5 "$SCALE_DIR/origin.log"; exit 1; }
  sleep 0.2
done
echo "== warming (WARM_MAX_USERS=$WARM_MAX_USERS WARM_MOVIES=$WARM_MOVIES)"
until grep -q 'cache warming finished' "$SCALE_DIR/origin.log"; do
  kill -0 "$origin_pid" 2>/dev/null || { tail -5 "$SCALE_DIR/origin.log"; exit 1; }
  sleep 1
done
grep -m1 'cache warming finished' "$SCALE_DIR/origin.log"
redis-cli -p "$([[ $MODE == single ]] && echo "$REDIS_PORT" || echo "$BASE")" INFO memory |
  grep '^used_memory_human' | tr -d '\r'
loadgen_status=0
# shellcheck disable=SC2086 # LOADGEN_ARGS is a list of options
"$LOADGEN" --target "http://127.0.0.1:$PORT" --users 162000 --movies 62000 \
  --mix recommendations=35,movie=35,popular=15,profile=10,genre_top=4,rating=1 \
  --connections 32 --warmup 10 --duration $((MINUTES * 60)) --timeline-every 60 \
  --database-url "$DB" --sample-memory --memory-every 60 --origin-pid "$origin_pid" \
  --redis-url "redis://127.0.0.1:$([[ $MODE == single ]] && echo "$REDIS_PORT" || echo "$BASE")" \
  "${fault_args[@]}" ${LOADGEN_ARGS:-} || loadgen_status=$?

admin=$(DATABASE_URL=$DB "$ORIGIN_BIN" token --admin)
echo "== per family (GET /admin/cache/stats)"
curl -sf -H "Authorization: Bearer $admin" "http://127.0.0.1:$PORT/admin/cache/stats" |
  python3 -c '
import json, sys
stats = json.load(sys.stdin)
print("%-16s %8s %8s %11s" % ("family", "hit rate", "stores", "bytes/entry"))
for name, f in stats["families"].items():
    rate = f.get("hit_rate")
    print("%-16s %8s %8s %11s" % (name, "-" if rate is None else "%.1f%%" % (100 * rate),
                                  f.get("stores", 0), f.get("bytes_per_entry") or "-"))
'
echo "== an uncached recommendation's parts, mean over the run (recommend_part_seconds)"
curl -sf "http://127.0.0.1:$PORT/metrics" | python3 -c '
import re, sys
sums, counts = {}, {}
for line in sys.stdin:
    m = re.match(r"recommend_part_seconds_(sum|count)\{part=\"(\w+)\"\} (\S+)", line)
    if m:
        (sums if m[1] == "sum" else counts)[m[2]] = float(m[3])
for part in ["read", "solve", "score", "select", "render"]:
    if counts.get(part):
        print("%-7s %8.3f ms  (%d)" % (part, 1000 * sums[part] / counts[part], counts[part]))
'
if [[ $MODE == cluster ]]; then
  echo "== per master: keys, used memory"
  for port in $(seq "$BASE" $((BASE + 5))); do
    role=$(redis-cli -p "$port" ROLE | head -1)
    [[ $role == master ]] || continue
    echo "127.0.0.1:$port keys=$(redis-cli -p "$port" DBSIZE) $(redis-cli -p "$port" INFO memory | grep '^used_memory_human' | tr -d '\r')"
  done
fi
# The load generator's verdict (failed requests, a ratings ledger that does not add up), after
# the report.
exit "$loadgen_status"
