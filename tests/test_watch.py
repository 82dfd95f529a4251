"""Live progress (baton/runtime/watch.py, baton/cli/watch.py): every pattern's events from its
Workflow Stream, nested runs merged, a watcher that comes back resumes."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.testing import WorkflowEnvironment

from baton.core.model_io import Chaos
from baton.core.runs import RunResult
from baton.runtime.watch import Cursor, events
from tests.helpers import start, worker
from tests.test_starter import starter

PATTERNS = [("support_desk", "My invoice is wrong", "handoff"),
            ("research_panel", "Is Rust fast?", "branch"),
            ("dev_team", "Write a parser", "delegation"),
            ("article_pipeline", "Durable agents", "gate")]


@pytest.mark.parametrize(("member", "prompt", "kind"), PATTERNS, ids=[p[0] for p in PATTERNS])
async def test_watch_shows_each_pattern_as_it_happens(env: WorkflowEnvironment, task_queue: str,
                                                      member: str, prompt: str,
                                                      kind: str) -> None:
    address = env.client.service_client.config.target_host
    async with worker(env.client, task_queue):
        handle = await start(env.client, task_queue, member, prompt,
                             chaos=Chaos(latency_s=0.2), result_type=RunResult)
        watched = await asyncio.to_thread(starter, "watch", handle.id, "--from-start",
                                          address=address)
        result = await handle.result()
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.splitlines()
    assert any("status running" in line for line in lines)
    assert any(f" {kind} " in line for line in lines), watched.stdout
    assert any("model_call" in line and "tok" in line for line in lines)
    assert any(f"result ({result.status})" in line for line in lines)
    if member == "research_panel":  # branches are child workflows, merged and namespaced
        assert any(" academic: finished (ok)" in line for line in lines)
        assert any("branches [" in line and "3/3" in line for line in lines)


async def test_events_from_python_and_a_watcher_that_comes_back(
        env: WorkflowEnvironment, task_queue: str, tmp_path: object) -> None:
    async with worker(env.client, task_queue):
        handle = await start(env.client, task_queue, "article_pipeline", "Durable agents",
                             chaos=Chaos(latency_s=0.3), result_type=RunResult)
        seen = []
        async for workflow_id, offset, event in events(env.client, handle.id):
            seen.append((workflow_id, offset, event))
            if len(seen) == 3:
                break  # the watcher disconnects
        resumed = {seen[-1][0]: seen[-1][1]}
        rest = [e async for e in events(env.client, handle.id, from_offsets=resumed)]
        await handle.result()
    first_offsets = [o for w, o, _ in seen if w == handle.id]
    later_offsets = [o for w, o, _ in rest if w == handle.id]
    assert later_offsets and min(later_offsets) > max(first_offsets)  # nothing twice
    assert rest[-1][2].kind == "result" or any(e.kind == "result" for _, _, e in rest)
    cursor = Cursor(handle.id, folder=tmp_path)  # type: ignore[arg-type]
    cursor.advance(handle.id, 5)
    cursor.save()
    assert Cursor(handle.id, folder=tmp_path).offsets == {handle.id: 5}  # type: ignore[arg-type]
