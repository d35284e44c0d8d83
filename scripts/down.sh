#!/usr/bin/env bash
# Stops what scripts/up.sh started: the edge, every origin instance (origin.pid, and
# origin-2.pid ... when ORIGIN_INSTANCES was more than 1; scripts/origin-instance.sh stop), then
# the services (their data is removed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUN_DIR=${RUN_DIR:-/tmp/movierec-run}
export RUN_DIR
if [[ -f $RUN_DIR/edge.pid ]]; then
  kill -- "-$(cat "$RUN_DIR/edge.pid")" 2>/dev/null || true
  rm -f "$RUN_DIR/edge.pid"
fi
for pidfile in "$RUN_DIR"/origin.pid "$RUN_DIR"/origin-*.pid; do
  case ${pidfile##*/} in
    origin.pid) n=1 ;;
    *) n=${pidfile##*/origin-}; n=${n%.pid} ;;
  esac
  if [[ -f $pidfile && $n =~ ^[1-9][0-9]*$ ]]; then
    scripts/origin-instance.sh stop "$n" || true
  elif [[ -f $pidfile ]]; then
    kill -- "-$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
done
scripts/services.sh down
