"""Token streaming's added delay: a provider's first token to a `baton.stream` subscriber.

A stub OpenAI-compatible server on a loopback port streams a chat completion: its
first content chunk after a fixed time to first token (`--ttft`), the rest every
`--interval`. One agent runs on it through the real `openai` SDK, with streaming on;
a `baton.stream` subscriber in this process notes when the first `text_delta`
arrives. The delay is that moment minus the moment the stub wrote its first chunk
(one clock: the stub is a thread of this process), so the provider's own latency is
not counted, only what Baton and Temporal add: the activity's publish (a signal),
the workflow task that appends it, the subscriber's long-poll returning. Runs go one
at a time; the run's history length is reported too (streaming's cost in history).
Prints one JSON line: {"bench": "stream", "first_delta_ms_p50", "first_delta_ms_p95",
"history_events_p50", ...}.

    python bench/stream_bench.py [--runs 20] [--ttft 0.5] [--tokens 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.client import Client  # noqa: E402

import baton  # noqa: E402
from baton.core.model_io import Message, ProviderConfig  # noqa: E402
from baton.core.runs import RunOptions  # noqa: E402
from baton.define.catalogue import load_catalogue, parse_catalogue  # noqa: E402
from baton.runtime.launch import plan_run, start_run  # noqa: E402
from baton.runtime.temporal import build_worker, exit_now  # noqa: E402
from bench.common import bench_environment  # noqa: E402

AGENT = "general"
TASK_QUEUE = "stream-bench"


class StubModel:
    """A chat completions endpoint that streams `tokens` words, paced; it notes when it
    wrote each answer's first content chunk."""

    def __init__(self, ttft_s: float, interval_s: float, tokens: int) -> None:
        self.ttft_s, self.interval_s, self.tokens = ttft_s, interval_s, tokens
        self.first_chunk_at: list[float] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                time.sleep(stub.ttft_s)
                for index in range(stub.tokens):
                    self._chunk({"content": f"w{index} "})
                    if index == 0:
                        stub.first_chunk_at.append(time.perf_counter())
                    time.sleep(stub.interval_s)
                self._chunk({}, finish="stop")
                self._send({"id": "stub", "object": "chat.completion.chunk", "created": 0,
                            "model": "stub", "choices": [], "usage": {
                                "prompt_tokens": 20, "completion_tokens": stub.tokens,
                                "total_tokens": 20 + stub.tokens}})
                self.wfile.write(b"data: [DONE]\n\n")

            def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> None:
                self._send({"id": "stub", "object": "chat.completion.chunk", "created": 0,
                            "model": "stub", "choices": [{"index": 0, "delta": delta,
                                                          "finish_reason": finish}]})

            def _send(self, body: dict[str, Any]) -> None:
                self.wfile.write(f"data: {json.dumps(body)}\n\n".encode())
                self.wfile.flush()

        return Handler


async def one_run(client: Client, stub: StubModel, catalogue: Any) -> tuple[float, int]:
    """(ms from the stub's first chunk to the subscriber's first text_delta, history
    events of the run)."""
    planned = plan_run(catalogue, AGENT, [Message(role="user", content="Say something")],
                       RunOptions(stream=True),
                       workflow_id=f"stream-bench-{uuid.uuid4().hex[:8]}")
    handle = await start_run(client, TASK_QUEUE, planned)
    first_delta_at = None
    async for event in baton.stream(handle.id, client=client):
        if event.kind == "text_delta" and first_delta_at is None:
            first_delta_at = time.perf_counter()
    await handle.result()
    assert first_delta_at is not None, "no text reached the subscriber"
    events = len((await handle.fetch_history()).events)
    return (first_delta_at - stub.first_chunk_at[-1]) * 1000, events


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--ttft", type=float, default=0.5, help="stub's time to first token (s)")
    parser.add_argument("--interval", type=float, default=0.02, help="s between its tokens")
    parser.add_argument("--tokens", type=int, default=100, help="tokens per answer")
    args = parser.parse_args()
    stub = StubModel(args.ttft, args.interval, args.tokens)
    # The endpoint is the worker's (a run only names it); a local server needs no key.
    providers = {"stub": ProviderConfig.model_validate({"kind": "openai", "base_url": stub.url})}
    raw = load_catalogue().model_dump(mode="json")
    raw["providers"] = {name: p.model_dump(mode="json") for name, p in providers.items()}
    raw["agents"][AGENT].update(model="stub:model", fallback_models=[])
    catalogue = parse_catalogue(raw)
    env = await bench_environment()
    try:
        async with build_worker(env.client, TASK_QUEUE, providers=providers):
            await one_run(env.client, stub, catalogue)  # warm up
            delays, events = [], []
            for _ in range(args.runs):
                delay, count = await one_run(env.client, stub, catalogue)
                delays.append(delay)
                events.append(count)
        print(json.dumps({
            "bench": "stream", "runs": args.runs, "ttft_s": args.ttft,
            "tokens": args.tokens, "token_interval_s": args.interval,
            "first_delta_ms_p50": round(statistics.median(delays), 1),
            "first_delta_ms_p95": round(pct(delays, 95), 1),
            "history_events_p50": statistics.median(events), "store": env.store}),
            flush=True)
    finally:
        await env.shutdown()
        stub.close()
    return 0


if __name__ == "__main__":
    exit_now(asyncio.run(main()))
