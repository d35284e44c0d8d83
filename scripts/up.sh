#!/usr/bin/env bash
# Brings the whole system up on this machine (the README's first command):
# PostgreSQL, Redis and a Redis Cluster on loopback (scripts/services.sh), MovieLens 100K
# fetched and imported, a model trained (once), the dashboard's page bundled and the origin
# built (release, embedding it) and started in the background on 127.0.0.1:8080, and the edge
# worker built and started in workerd (`wrangler dev`) on 127.0.0.1:8787 in front of it. Prints
# the URLs and tokens to try them with. Idempotent: a second run restarts both with the latest build. Stop: scripts/down.sh.
#
# ORIGIN_INSTANCES=N (default 1) starts N origin instances on consecutive ports from
# ORIGIN_LISTEN (8080, 8081, ...), named origin-1 ... origin-N (INSTANCE_NAME), all on the
# same PostgreSQL and Redis; the edge gets them all as its ORIGIN_URL list. Each has its pid
# file and log in RUN_DIR: origin.pid/origin.log for the first (as with one instance),
# origin-2.pid/origin-2.log and so on for the others. Every instance started by an earlier
# run is stopped first, whatever its N was.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUN_DIR=${RUN_DIR:-/tmp/movierec-run}
ORIGIN_LISTEN=${ORIGIN_LISTEN:-127.0.0.1:8080}
export ORIGIN_LISTEN
ORIGIN_INSTANCES=${ORIGIN_INSTANCES:-1}
if ! [[ $ORIGIN_INSTANCES =~ ^[1-9][0-9]*$ ]]; then
  echo "ORIGIN_INSTANCES must be a whole number of at least 1, not '$ORIGIN_INSTANCES'" >&2
  exit 2
fi
ORIGIN_HOST=${ORIGIN_LISTEN%:*}
ORIGIN_PORT=${ORIGIN_LISTEN##*:}
EDGE_PORT=${EDGE_PORT:-8787}
mkdir -p "$RUN_DIR"

scripts/services.sh up
scripts/fetch-data.sh

echo "== bundling the dashboard's page (the origin embeds it)"
scripts/build-dashboard.sh
echo "== building the origin (release)"
cargo build --locked --release -p origin

echo "== importing MovieLens 100K"
target/release/origin import
echo "== training the recommender (unless the stored model is current)"
target/release/origin train --if-outdated >/dev/null

echo "== building the edge worker"
scripts/build-edge.sh
eval "$(scripts/edge-toolchain.sh --env)"
if [[ ! -f .dev.vars ]]; then
  # The local purge secret (git-ignored); on Cloudflare: wrangler secret put PURGE_SECRET.
  echo "PURGE_SECRET=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')" > .dev.vars
fi
# The edge verifies users' tokens itself with the origin's secret: this run's JWT_SECRET, or
# the origin's development default when unset (origin/src/settings.rs, DEV_JWT_SECRET). On
# Cloudflare: wrangler secret put JWT_SECRET.
{ grep -v '^JWT_SECRET=' .dev.vars || true; echo "JWT_SECRET=${JWT_SECRET:-dev-only-secret-change-me}"; } > .dev.vars.new
mv .dev.vars.new .dev.vars
chmod 600 .dev.vars

# Stops the process group a pid file names (the edge is started with setsid).
stop_pid() {
  local pidfile=$1
  if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill -- "-$(cat "$pidfile")" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
}

wait_for() {
  local url=$1 pidfile=$2 log=$3
  for _ in $(seq 300); do
    curl -s -o /dev/null "$url" && return 0
    kill -0 "$(cat "$pidfile")" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$log"; echo "failed to start (log: $log)"; exit 1
}

# Instance i (from 1): its address, and the name of its pid file and log in RUN_DIR.
instance_listen() { echo "$ORIGIN_HOST:$((ORIGIN_PORT + $1 - 1))"; }
instance_file() { if [[ $1 == 1 ]]; then echo origin; else echo "origin-$1"; fi; }

if [[ $ORIGIN_INSTANCES == 1 ]]; then echo "== starting the origin"; else echo "== starting $ORIGIN_INSTANCES origin instances"; fi
# Every instance an earlier run started, however many there were. Each instance is started,
# waited for and stopped by scripts/origin-instance.sh, the one way to run one (loadgen's
# `--fault origin` restarts a killed instance with it too).
export RUN_DIR
for pidfile in "$RUN_DIR"/origin.pid "$RUN_DIR"/origin-*.pid; do
  [[ -f $pidfile ]] || continue
  case ${pidfile##*/} in
    origin.pid) scripts/origin-instance.sh stop 1 ;;
    origin-[1-9]*.pid) n=${pidfile##*/origin-}; scripts/origin-instance.sh stop "${n%.pid}" ;;
    *) stop_pid "$pidfile" ;;
  esac
done
# All of them run migrations at start (MIGRATE_ON_START), which is harmless: the import above
# has applied them already, and sqlx holds a PostgreSQL advisory lock while it migrates.
# Each instance knows the edge in front of it and its secret: the dashboard's edge layer
# (GET /admin/edge/stats reads the edge's /__edge/stats).
EDGE_PURGE_URL=http://127.0.0.1:$EDGE_PORT
PURGE_SECRET=$(sed -n 's/^PURGE_SECRET=//p' .dev.vars)
export EDGE_PURGE_URL PURGE_SECRET
ORIGIN_URLS=
for i in $(seq "$ORIGIN_INSTANCES"); do
  ORIGIN_BIN=target/release/origin scripts/origin-instance.sh start "$i"
  ORIGIN_URLS+="${ORIGIN_URLS:+,}http://$(instance_listen "$i")"
done
for i in $(seq "$ORIGIN_INSTANCES"); do
  scripts/origin-instance.sh wait "$i"
done

echo "== starting the edge (wrangler dev, workerd)"
stop_pid "$RUN_DIR/edge.pid"
setsid node_modules/.bin/wrangler dev --ip 127.0.0.1 --port "$EDGE_PORT" --persist-to "$RUN_DIR/edge-state" \
  --var "ORIGIN_URL:$ORIGIN_URLS" >"$RUN_DIR/edge.log" 2>&1 < /dev/null &
echo $! >"$RUN_DIR/edge.pid"
wait_for "http://127.0.0.1:$EDGE_PORT/__edge/purge" "$RUN_DIR/edge.pid" "$RUN_DIR/edge.log"

TOKEN=$(target/release/origin token --user 1)
ADMIN=$(target/release/origin token --admin)
if [[ $ORIGIN_INSTANCES == 1 ]]; then
  ORIGINS="  origin   http://$ORIGIN_LISTEN          (log: $RUN_DIR/origin.log)"
  STATS="  curl -i http://$ORIGIN_LISTEN/admin/cache/stats -H 'Authorization: Bearer $ADMIN'"
else
  ORIGINS=; STATS=
  for i in $(seq "$ORIGIN_INSTANCES"); do
    ORIGINS+="${ORIGINS:+$'\n'}  origin-$i http://$(instance_listen "$i")          (log: $RUN_DIR/$(instance_file "$i").log)"
    STATS+="${STATS:+$'\n'}  curl -i http://$(instance_listen "$i")/admin/cache/stats -H 'Authorization: Bearer $ADMIN'"
  done
fi
cat <<INFO

The system is up.
  edge     http://127.0.0.1:$EDGE_PORT          (log: $RUN_DIR/edge.log)
$ORIGINS

Try (twice, and read Cache-Status and Age):
  curl -i http://127.0.0.1:$EDGE_PORT/movies/1
  curl -i 'http://127.0.0.1:$EDGE_PORT/movies/popular?limit=5'
  curl -i http://127.0.0.1:$EDGE_PORT/genres/sci-fi/top
  curl -i http://127.0.0.1:$EDGE_PORT/users/1/recommendations -H 'Authorization: Bearer $TOKEN'
$STATS

Dashboard of an instance (it asks for the admin token of the stats line): http://$(instance_listen 1)/admin/dashboard

Tokens: target/release/origin token --user ID | --admin.   Stop: scripts/down.sh
INFO
