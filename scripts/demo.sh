#!/usr/bin/env bash
# Run every pattern once: start a worker, run `starter.py demo`, then the support desk
# of examples/support_desk.py (your own tools and agents, loaded with --app), stop the
# worker. The server stays up so the runs can be inspected in the Web UI.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .temporal
# The example's refunds go to a fresh file each demo, so its refund is always issued.
export SUPPORT_DESK_REFUNDS="$PWD/.temporal/demo-refunds.json"
rm -f "$SUPPORT_DESK_REFUNDS"
.venv/bin/python worker.py --app examples.support_desk --app examples.mcp_clock \
    >.temporal/worker.log 2>&1 &
WORKER=$!
trap 'kill -TERM $WORKER 2>/dev/null; wait $WORKER 2>/dev/null || true' EXIT
status=0
.venv/bin/python starter.py demo "$@" || status=$?
echo
echo "== your own code: examples/support_desk.py, on the same worker (--app examples.support_desk)"
.venv/bin/python starter.py run support_desk \
    "I was charged twice for order A-1002. Please refund the extra 25 USD." \
    --app examples.support_desk || status=$?
echo "refunds written by the issue_refund tool: $SUPPORT_DESK_REFUNDS"
echo
echo "== an MCP server's tools: examples/mcp_clock.py declares the server and the agent"
.venv/bin/python starter.py run clock_agent \
    "What time is it in Tokyo, and what is 21 degrees C in F?" \
    --app examples.mcp_clock || status=$?
echo
echo "== people in the loop: a refund above 100 USD waits for a person"
RUN=$(.venv/bin/python starter.py run support_desk \
    "Order A-1004 arrived broken. Please refund the 149 USD." \
    --app examples.support_desk --no-wait --json |
    .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["workflow_id"])')
for _ in $(seq 1 60); do
  .venv/bin/python starter.py pending | grep "$RUN" >/dev/null && break
  sleep 0.5
done
.venv/bin/python starter.py pending
echo "A person approves from a second terminal with (the demo runs it for you):"
echo "  .venv/bin/python starter.py approve $RUN --note 'ok, manager'"
.venv/bin/python starter.py approve "$RUN" --note "ok, manager" || status=$?
.venv/bin/python starter.py watch "$RUN" --from-start | tail -n 8 || status=$?
echo
echo "== a short conversation: one session, two turns (the second knows the first)"
SESSION="demo-$(date +%s)"
.venv/bin/python starter.py chat support_desk --session "$SESSION" \
    "Hi, my invoice shows the wrong amount after I upgraded" || status=$?
.venv/bin/python starter.py chat support_desk --session "$SESSION" \
    "And can I get the old price back for this month?" || status=$?
.venv/bin/python starter.py end "$SESSION" || status=$?
echo
# The Web UI the links follow (TEMPORAL_UI_URL, TEMPORAL_UI_PORT, or what make server recorded).
UI=$(.venv/bin/python -c 'from baton.runtime.temporal import Settings; s = Settings.from_env()
print(f"{s.ui_url}/namespaces/{s.namespace}/workflows")')
echo "Inspect the runs: $UI"
# The worker stays up for the console (chat needs one); both stop with `make down`.
trap - EXIT
echo "$WORKER" >.temporal/worker.pid
CONSOLE_PORT="${BATON_CONSOLE_PORT:-8765}"
if .venv/bin/python - "$CONSOLE_PORT" <<'PY'
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
then
  echo "Something already answers on port $CONSOLE_PORT; the console was not started" \
       "(BATON_CONSOLE_PORT=N make demo picks another port)."
else
  nohup .venv/bin/python starter.py serve --port "$CONSOLE_PORT" >.temporal/console.log 2>&1 &
  echo $! >.temporal/console.pid
  for _ in $(seq 1 40); do
    .venv/bin/python -c "import socket; socket.create_connection(('127.0.0.1', $CONSOLE_PORT), 1)" \
      2>/dev/null && break
    sleep 0.25
  done
  echo "Console (chat, live run trees, approvals): http://127.0.0.1:$CONSOLE_PORT"
fi
echo "The Temporal server, the worker and the console keep running; stop them with: make down"
exit $status
