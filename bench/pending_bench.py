"""`pending` with N runs waiting for people and no worker at all.

The runs are started as the approval desk leaves a waiting run (BatonStatus
`waiting_approval` and its memo, baton/core/waiting.py) on a task queue no worker polls,
beside M running runs that say nothing (as idle chat sessions do), so what is
measured is `pending` alone: one visibility list query and the memos it returns.
Nothing is asked of any run (queries and Updates are refused in this process).
Prints one line: {"bench": "pending", "runs": n, "median_s": ..., "max_s": ...}.

    python bench/pending_bench.py [--runs 1000] [--silent 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.client import Client, WorkflowHandle  # noqa: E402
from temporalio.common import SearchAttributePair, TypedSearchAttributes  # noqa: E402

from baton.core.runs import ApprovalRequest  # noqa: E402
from baton.core.waiting import APPROVALS_MEMO, ApprovalsMemo  # noqa: E402
from baton.runtime.approvals import pending  # noqa: E402
from baton.runtime.temporal import exit_now  # noqa: E402
from baton.telemetry.search import STATUS  # noqa: E402
from bench.common import bench_environment  # noqa: E402

BATCH = 50  # runs started at a time


def waiting_memo(index: int) -> ApprovalsMemo:
    return ApprovalsMemo(waiting=[ApprovalRequest(
        request_id="issue_refund-1", workflow_id=f"bench-waiting-{index}", kind="tool",
        agent="clerk", subject="issue_refund",
        arguments={"order_id": f"A-{index}", "amount_usd": 250.0},
        why="the approval policy of issue_refund asks a person", asked_at=datetime.now(UTC),
        timeout_s=86_400)])


async def start_many(client: Client, task_queue: str, count: int,
                     waiting: bool) -> list[WorkflowHandle[Any, Any]]:
    handles: list[WorkflowHandle[Any, Any]] = []
    for first in range(0, count, BATCH):
        handles += await asyncio.gather(*(client.start_workflow(
            "AgentWorkflow" if waiting else "SessionWorkflow",
            id=f"bench-{'waiting' if waiting else 'silent'}-{i}-{uuid.uuid4().hex[:6]}",
            task_queue=task_queue,
            memo={APPROVALS_MEMO: waiting_memo(i)} if waiting else None,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(STATUS, "waiting_approval")]) if waiting else None)
            for i in range(first, min(first + BATCH, count))))
    return handles


def refuse_asking(client: Client) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("pending asked a run")

    for rpc in ("query_workflow", "update_workflow_execution", "describe_workflow_execution"):
        setattr(client.workflow_service, rpc, refuse)


async def main(runs: int, silent: int, repeat: int) -> dict[str, Any]:
    environment = await bench_environment(in_memory=True)
    client = environment.client
    task_queue = f"bench-pending-{uuid.uuid4().hex[:8]}"
    try:
        handles = [*await start_many(client, task_queue, runs, waiting=True),
                   *await start_many(client, task_queue, silent, waiting=False)]
        wanted = {h.id for h in handles[:runs]}
        refuse_asking(client)
        for _ in range(600):  # until visibility lists them all
            if wanted <= {w.workflow_id for w in await pending(client)}:
                break
            await asyncio.sleep(0.5)
        timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            listed = await pending(client)
            timings.append(time.perf_counter() - started)
        assert wanted <= {w.workflow_id for w in listed}
        return {"bench": "pending", "runs": runs, "silent_runs": silent,
                "median_s": round(statistics.median(timings), 3),
                "max_s": round(max(timings), 3)}
    finally:
        await environment.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--silent", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.runs, args.silent, args.repeat))), flush=True)
    exit_now(0)
