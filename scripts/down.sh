#!/usr/bin/env bash
# Stops what scripts/up.sh started: the edge, every origin instance (origin.pid, and
# origin-2.pid ... when ORIGIN_INSTANCES was more than 1), then the services (their data is
# removed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUN_DIR=${RUN_DIR:-/tmp/movierec-run}
for pidfile in "$RUN_DIR"/edge.pid "$RUN_DIR"/origin.pid "$RUN_DIR"/origin-*.pid; do
  if [[ -f $pidfile ]]; then
    kill -- "-$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
done
scripts/services.sh down
