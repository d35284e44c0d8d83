#!/usr/bin/env bash
# Brings the whole system up on this machine (the README's first command):
# PostgreSQL, Redis and a Redis Cluster on loopback (scripts/services.sh), MovieLens 100K
# fetched and imported, the origin built (release) and started in the background on
# 127.0.0.1:8080. Prints the URLs and a token to try them with. Idempotent: a second run
# restarts the origin with the latest build. Stop everything with scripts/down.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUN_DIR=${RUN_DIR:-/tmp/movierec-run}
ORIGIN_LISTEN=${ORIGIN_LISTEN:-127.0.0.1:8080}
export ORIGIN_LISTEN
mkdir -p "$RUN_DIR"

scripts/services.sh up
scripts/fetch-data.sh

echo "== building the origin (release)"
cargo build --locked --release -p origin

echo "== importing MovieLens 100K"
target/release/origin import

stop_pid() {
  local pidfile=$1
  if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
}

echo "== starting the origin"
stop_pid "$RUN_DIR/origin.pid"
setsid target/release/origin serve >"$RUN_DIR/origin.log" 2>&1 < /dev/null &
echo $! >"$RUN_DIR/origin.pid"
for _ in $(seq 100); do
  curl -fsS "http://$ORIGIN_LISTEN/health" >/dev/null 2>&1 && break
  kill -0 "$(cat "$RUN_DIR/origin.pid")" 2>/dev/null || { tail -20 "$RUN_DIR/origin.log"; echo "origin failed to start (log: $RUN_DIR/origin.log)"; exit 1; }
  sleep 0.1
done

TOKEN=$(target/release/origin token --user 1)
ADMIN=$(target/release/origin token --admin)
cat <<INFO

The system is up.
  origin   http://$ORIGIN_LISTEN          (log: $RUN_DIR/origin.log)

Try:
  curl -i http://$ORIGIN_LISTEN/movies/1
  curl -i 'http://$ORIGIN_LISTEN/movies/popular?limit=5'
  curl -i http://$ORIGIN_LISTEN/genres/sci-fi/top
  curl -i http://$ORIGIN_LISTEN/users/1/recommendations -H 'Authorization: Bearer $TOKEN'
  curl -i http://$ORIGIN_LISTEN/admin/cache/stats -H 'Authorization: Bearer $ADMIN'

Tokens: target/release/origin token --user ID | --admin.   Stop: scripts/down.sh
INFO
