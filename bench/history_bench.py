"""How large a history long work leaves: the 1890 scenario and a 20 MB document.

The scenario of temporalio/sdk-python#1890 (tests/long_run.py): one agent, 100 model
calls through the real OpenAI client against a local wire-format server, tool results
building a ~200,000-token conversation. Run twice on one server in one process:
Baton as it ships (each call carries only what is new plus a reference to the stored
conversation, activities/conversations.py) and the baseline, the same run with every
call carrying its whole conversation (BATON_CONVERSATION_OFFLOAD_BYTES set past any
conversation; payloads over 512 KiB still go to the payload store, or the baseline
would fail at Temporal's 2 MB limit). Each history is then replayed. Then a 20 MB
document through a two-stage pipeline. Prints

    {"bench": "history", "calls": 100, "tokens": ..., "history_bytes": ..., "events": ...,
     "replayed": true, "baseline_history_bytes": ..., "baseline_events": ..., ...}
    {"bench": "document", "mb": 20, "history_bytes": ..., "events": ..., ...}

    python bench/history_bench.py [--calls 100] [--document-mb 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from temporalio.client import Client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Before anything builds a data converter: the payload store lives in a temporary
# directory, and the wire-format server's key is set.
_STORE = tempfile.TemporaryDirectory(prefix="baton-history-bench-")
os.environ["BATON_PAYLOAD_DIR"] = _STORE.name
os.environ.setdefault("BATON_TEST_PROVIDER_KEY", "bench-key")

import baton  # noqa: E402
from baton.activities.conversations import OFFLOAD_ENV  # noqa: E402
from baton.runtime.temporal import build_replayer, build_worker, exit_now  # noqa: E402
from bench.common import bench_environment  # noqa: E402
from tests.fake_llm import FakeLLMServer  # noqa: E402
from tests.long_run import LongRun, run_long_conversation  # noqa: E402

MB = 1024 * 1024


def store_bytes() -> int:
    return sum(p.stat().st_size for p in Path(_STORE.name).rglob("*") if p.is_file())


async def long_run(client: Client, calls: int, *, resend: bool) -> tuple[LongRun, float,
                                                                          bool, int]:
    """(the run, its seconds, whether it replayed, bytes it added to the store)."""
    if resend:
        os.environ[OFFLOAD_ENV] = str(1 << 40)
    else:
        os.environ.pop(OFFLOAD_ENV, None)
    stored = store_bytes()
    with FakeLLMServer() as fake:
        started = time.perf_counter()
        run = await run_long_conversation(client, f"history-{uuid.uuid4().hex[:8]}", fake,
                                          calls=calls, sandboxed=False)
        seconds = time.perf_counter() - started
    try:
        await build_replayer().replay_workflow(run.history)
        replayed = True
    except Exception as err:  # reported, not hidden: the figure says it did not replay
        print(f"replay failed: {err}", file=sys.stderr)
        replayed = False
    return run, seconds, replayed, store_bytes() - stored


async def document_run(client: Client, megabytes: int) -> dict[str, object]:
    extractor = baton.Agent("doc_extractor", "Pick out the document's key facts.")
    summarizer = baton.Agent("doc_summarizer", "Summarise the key facts in three lines.")
    team = baton.Pipeline("document_desk", [extractor, summarizer])
    document = ("lighthouse-keeper-ledger " * (megabytes * MB // 25))
    queue = f"document-{uuid.uuid4().hex[:8]}"
    stored = store_bytes()
    started = time.perf_counter()
    async with build_worker(client, queue, sandboxed=False):
        outcome = await baton.run(team, "Summarise this document.\n\n" + document,
                                  client=client, task_queue=queue)
    seconds = time.perf_counter() - started
    history = await client.get_workflow_handle(outcome.workflow_id).fetch_history()
    await build_replayer().replay_workflow(history)
    return {"bench": "document", "mb": megabytes, "pattern": "pipeline",
            "status": outcome.result.status,
            "history_bytes": sum(e.ByteSize() for e in history.events),
            "events": len(history.events), "replayed": True, "seconds": round(seconds, 2),
            "stored_mb": round((store_bytes() - stored) / MB, 1)}


async def main(calls: int, document_mb: int) -> int:
    bench = await bench_environment()
    try:
        client = bench.client
        run, seconds, replayed, stored = await long_run(client, calls, resend=False)
        base, base_seconds, base_replayed, base_stored = await long_run(client, calls,
                                                                        resend=True)
        print(json.dumps({
            "bench": "history", "store": bench.store, "calls": calls, "tokens": run.tokens,
            "status": run.result.status, "history_bytes": run.history_bytes,
            "events": run.events, "largest_model_input_bytes": run.largest_model_input(),
            "replayed": replayed, "seconds": round(seconds, 2),
            "stored_mb": round(stored / MB, 1),
            "baseline_history_bytes": base.history_bytes, "baseline_events": base.events,
            "baseline_largest_model_input_bytes": base.largest_model_input(),
            "baseline_replayed": base_replayed, "baseline_seconds": round(base_seconds, 2),
            "baseline_stored_mb": round(base_stored / MB, 1),
            "ratio": round(run.history_bytes / base.history_bytes, 3),
            "goal_met": (run.result.status == "ok" and replayed
                         and run.history_bytes < 5 * MB and run.events < 2000)}), flush=True)
        if document_mb:
            print(json.dumps(await document_run(client, document_mb)), flush=True)
    finally:
        await bench.shutdown()
        _STORE.cleanup()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--document-mb", type=int, default=20)
    arguments = parser.parse_args()
    exit_now(asyncio.run(main(arguments.calls, arguments.document_mb)))
