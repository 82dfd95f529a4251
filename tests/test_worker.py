"""worker.py: serves runs from its task queue, stops cleanly on SIGTERM, runs --app tools."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

import baton
from baton.core.runs import TriageResult
from tests.helpers import run
from tests.processes import spawn, stop

ROOT = Path(__file__).resolve().parent.parent


async def test_worker_process_serves_and_exits_zero_on_sigterm(env: WorkflowEnvironment,
                                                               task_queue: str) -> None:
    address = env.client.service_client.config.target_host
    process = await start_worker(address, task_queue)
    try:
        result = await run(env.client, task_queue, "support_desk", "Refund my invoice",
                           result_type=TriageResult)
        assert result.handled_by == "billing"
    finally:
        out, _ = await stop(process)
    assert process.returncode == 0, out.decode()
    assert "signal received; finishing in-flight tasks" in out.decode()


async def start_worker(address: str, task_queue: str, *args: str,
                       env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await spawn(
        sys.executable, "worker.py", *args, cwd=ROOT,
        env={**os.environ, "TEMPORAL_ADDRESS": address, "BATON_TASK_QUEUE": task_queue,
             **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


async def test_app_worker_killed_mid_tool_never_reruns_completed_tools(
        env: WorkflowEnvironment, task_queue: str, tmp_path: Path) -> None:
    """kill -9 while a slow tool runs: the tool that completed before the crash is not
    executed again, the in-flight one is re-run (at least once), and the run completes."""
    from tests.data.tool_app import support

    log = tmp_path / "tools.jsonl"
    extra = {"BATON_TEST_TOOL_LOG": str(log), "BATON_TEST_SLOW_S": "4"}
    address = env.client.service_client.config.target_host
    first = await start_worker(address, task_queue, "--app", "tests.data.tool_app", env=extra)
    try:
        handle = await baton.start(support, "Status of A-1001 and a report on it",
                                   client=env.client, task_queue=task_queue)
        for _ in range(200):  # until the slow tool has started
            if log.exists() and any(e["tool"] == "slow_report" for e in log_lines(log)):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"slow_report never started: {await first.communicate()}")
    finally:
        first.kill()  # the crash this test is about
        await first.wait()
    extra["BATON_TEST_SLOW_S"] = "0"
    second = await start_worker(address, task_queue, "--app", "tests.data.tool_app", env=extra)
    try:
        outcome = await asyncio.wait_for(handle.result(), 60)
    finally:
        await stop(second)
    events = log_lines(log)
    lookups = [e for e in events if e["tool"] == "lookup_order" and e["event"] == "end"]
    reports = [e for e in events if e["tool"] == "slow_report"]
    assert len(lookups) == 1  # completed before the crash: never executed again
    assert [(e["event"], e["attempt"]) for e in reports] == [
        ("start", 1), ("start", 2), ("end", 2)]  # in flight at the crash: re-run once
    assert len({e["key"] for e in reports}) == 1  # the same idempotency key both times
    assert outcome.status == "ok" and outcome.output is not None


def log_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]
