"""What tracing and payload encryption cost: the pipeline's per-step time and fan-out
N=100, each as a ratio to the same benchmark without, in one run.

Runs bench/step_bench.py (pipeline) and bench/fanout_bench.py (N=100) as
subprocesses three times: plain; with BATON_ENCRYPTION_KEY set (AES-GCM codec on
every payload); with OTEL_EXPORTER_OTLP_ENDPOINT pointing at a local sink that
accepts and discards spans (the exporter does its real work; no viewer's cost).
Prints {"bench": "overhead", "feature": ..., "step_ratio": ..., "fanout100_ratio": ...}.

    python bench/overhead_bench.py [--runs 10] [--fanout-repeat 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that accepts every export and keeps nothing."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def figures(env: dict[str, str], runs: int, fanout_repeat: int) -> tuple[float, float]:
    """(pipeline ms per step p50, fan-out N=100 wall seconds) under `env`; raw Temporal
    is left out (the ratio here is Baton with against without)."""
    full = {**os.environ, **env}
    step = subprocess.run([sys.executable, "bench/step_bench.py", "--runs", str(runs),
                           "--patterns", "pipeline"], cwd=ROOT, env=full, text=True,
                          capture_output=True, check=True)
    fan = subprocess.run([sys.executable, "bench/fanout_bench.py", "--n", "100",
                          "--repeat", str(fanout_repeat), "--raw-max-n", "0"], cwd=ROOT,
                         env=full, text=True, capture_output=True, check=True)
    step_line = next(json.loads(x) for x in step.stdout.splitlines() if x.startswith("{"))
    fan_line = next(json.loads(x) for x in fan.stdout.splitlines() if x.startswith("{"))
    return step_line["ms_per_step_p50"], fan_line["wall_s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--fanout-repeat", type=int, default=3)
    args = parser.parse_args()
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    key = base64.b64encode(os.urandom(32)).decode()
    variants = {
        "encryption": {"BATON_ENCRYPTION_KEY": key},
        "tracing": {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.server_port}"},
    }
    plain = figures({}, args.runs, args.fanout_repeat)
    for feature, env in variants.items():
        step, fan = figures(env, args.runs, args.fanout_repeat)
        print(json.dumps({"bench": "overhead", "feature": feature,
                          "step_ms": step, "plain_step_ms": plain[0],
                          "step_ratio": round(step / plain[0], 2),
                          "fanout100_s": fan, "plain_fanout100_s": plain[1],
                          "fanout100_ratio": round(fan / plain[1], 2)}), flush=True)
    sink.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
