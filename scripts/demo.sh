#!/usr/bin/env bash
# Run every pattern once: start a worker, run `starter.py demo`, stop the worker.
# The server stays up so the runs can be inspected in the Web UI.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .temporal
.venv/bin/python worker.py >.temporal/worker.log 2>&1 &
WORKER=$!
trap 'kill -TERM $WORKER 2>/dev/null; wait $WORKER 2>/dev/null || true' EXIT
status=0
.venv/bin/python starter.py demo "$@" || status=$?
echo
echo "Inspect the runs: ${TEMPORAL_UI_URL:-http://localhost:8233}/namespaces/${TEMPORAL_NAMESPACE:-default}/workflows"
echo "The Temporal server keeps running; stop it with: make down"
exit $status
