"""worker.py: serves runs from its task queue and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from baton.runs import TriageResult
from tests.helpers import run

ROOT = Path(__file__).resolve().parent.parent


async def test_worker_process_serves_and_exits_zero_on_sigterm(env: WorkflowEnvironment,
                                                               task_queue: str) -> None:
    address = env.client.service_client.config.target_host
    process = await asyncio.create_subprocess_exec(
        sys.executable, "worker.py", cwd=ROOT,
        env={**os.environ, "TEMPORAL_ADDRESS": address, "BATON_TASK_QUEUE": task_queue},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        result = await run(env.client, task_queue, "support_desk", "Refund my invoice",
                           result_type=TriageResult)
        assert result.handled_by == "billing"
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, out.decode()
    assert "signal received; finishing in-flight tasks" in out.decode()
