#!/usr/bin/env bash
# Stops what scripts/up.sh started: the origin, then the services (their data is removed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUN_DIR=${RUN_DIR:-/tmp/movierec-run}
if [[ -f $RUN_DIR/origin.pid ]]; then
  kill "$(cat "$RUN_DIR/origin.pid")" 2>/dev/null || true
  rm -f "$RUN_DIR/origin.pid"
fi
scripts/services.sh down
