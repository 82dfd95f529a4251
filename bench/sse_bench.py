"""Many people watching one run: N concurrent SSE subscribers on one `serve` process.

One `serve` app (baton/web/) on a loopback port, a production-tuned worker, and one
streamed fan-out run (offline models with a latency, so text arrives over seconds).
N clients open `GET /api/runs/{id}/events` at once and read to RUN_FINISHED; a
reference client reads the whole stream after the run ended. Every subscriber must
have received exactly the reference's events, in order, ids included: `lost` and
`duplicated` count the events that were not. The process keeps one feed per run
(baton/web/feeds.py), so N subscribers cost the run one long-poll, not N.
Prints one JSON line: {"bench": "sse", "subscribers", "events", "lost", "duplicated",
"first_event_ms_p50/p95", "finished_s", ...}.

    python bench/sse_bench.py [--subscribers 100] [--latency 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx2 as httpx  # noqa: E402
import uvicorn  # noqa: E402

from baton.define.catalogue import load_catalogue  # noqa: E402
from baton.runtime.temporal import Settings, build_worker, exit_now  # noqa: E402
from baton.web.app import ServeConfig, create_app  # noqa: E402
from bench.common import bench_environment  # noqa: E402

TEAM = "research_panel"
PROMPT = "Is durable execution worth it for production LLM agents?"
TASK_QUEUE = "sse-bench"


async def subscribe(http: httpx.AsyncClient, run_id: str,
                    opened: float) -> tuple[list[str], float]:
    """The ids of every event read to the run's end, and ms to the first one."""
    ids: list[str] = []
    first_ms = -1.0
    async with http.stream("GET", f"/api/runs/{run_id}/events") as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                if not ids:
                    first_ms = (time.perf_counter() - opened) * 1000
                ids.append(line[4:])
    return ids, first_ms


async def main(subscribers: int, latency: float) -> dict[str, object]:
    bench = await bench_environment(in_memory=True)
    client = bench.client
    app = create_app(ServeConfig(catalogue=load_catalogue(),
                                 settings=Settings(task_queue=TASK_QUEUE), client=client,
                                 offline_latency_s=latency))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           timeout_graceful_shutdown=1))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        limits = httpx.Limits(max_connections=subscribers + 10)
        async with build_worker(client, TASK_QUEUE), httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=120, limits=limits) as http:
            started = await http.post("/api/runs", json={"member": TEAM, "prompt": PROMPT})
            started.raise_for_status()
            run_id = started.json()["workflow_id"]
            opened = time.perf_counter()
            results = await asyncio.gather(*(subscribe(http, run_id, opened)
                                             for _ in range(subscribers)))
            finished_s = time.perf_counter() - opened
            reference, _ = await subscribe(http, run_id, time.perf_counter())
    finally:
        server.should_exit = True
        await serving
        await bench.shutdown()
    lost = sum(len(set(reference) - set(ids)) for ids, _ in results)
    duplicated = sum(len(ids) - len(set(ids)) for ids, _ in results)
    out_of_order = sum(ids != reference for ids, _ in results) if not lost else None
    firsts = sorted(ms for _, ms in results)
    return {"bench": "sse", "subscribers": subscribers, "team": TEAM,
            "offline_latency_s": latency, "events": len(reference), "lost": lost,
            "duplicated": duplicated, "differing_streams": out_of_order,
            "first_event_ms_p50": round(statistics.median(firsts), 1),
            "first_event_ms_p95": round(firsts[int(0.95 * (len(firsts) - 1))], 1),
            "finished_s": round(finished_s, 2)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--latency", type=float, default=1.0,
                        help="offline model latency (s): how long the run streams")
    args = parser.parse_args()
    result = asyncio.run(main(args.subscribers, args.latency))
    print(json.dumps(result), flush=True)
    exit_now(0 if result["lost"] == 0 and result["duplicated"] == 0
             and result["differing_streams"] == 0 else 1)
