#!/usr/bin/env bash
# Stops what scripts/up.sh started: the edge, the origin, then the services (their data is
# removed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUN_DIR=${RUN_DIR:-/tmp/movierec-run}
for service in edge origin; do
  if [[ -f $RUN_DIR/$service.pid ]]; then
    kill -- "-$(cat "$RUN_DIR/$service.pid")" 2>/dev/null || true
    rm -f "$RUN_DIR/$service.pid"
  fi
done
scripts/services.sh down
