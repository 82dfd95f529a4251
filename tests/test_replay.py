"""Determinism: every pattern run with no workflow cache, then its history replayed."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.workflow import NondeterminismError

from baton.core.model_io import Chaos
from baton.core.runs import RunResult
from baton.runtime.temporal import build_replayer
from tests.helpers import finish, start, worker

CASES = [
    ("support_desk", "My invoice shows the wrong amount", None),
    ("research_panel", "Is Rust faster than Go?", None),
    ("dev_team", "Write a date parser, then revise it", None),
    ("article_pipeline", "Durable execution",
     Chaos(rejection_rate=1.0, agents=["editor"], faulty_tries=1)),
    ("concierge_desk", "Research and compare vector databases", None),
]


@pytest.mark.parametrize(("member", "prompt", "chaos"), CASES, ids=[c[0] for c in CASES])
async def test_pattern_replays_deterministically(env: WorkflowEnvironment, task_queue: str,
                                                 member: str, prompt: str,
                                                 chaos: Chaos | None) -> None:
    # max_cached_workflows=0: every workflow task replays the whole history so far;
    # NondeterminismError then fails the run instead of retrying the task forever
    # (what production wants, so only the tests ask for it).
    async with worker(env.client, task_queue, max_cached_workflows=0,
                      workflow_failure_exception_types=[NondeterminismError]):
        handle = await start(env.client, task_queue, member, prompt, chaos=chaos,
                             result_type=RunResult)
        await finish(handle)
        histories: list[WorkflowHistory] = [
            await env.client.get_workflow_handle(w.id).fetch_history()
            async for w in env.client.list_workflows(f"WorkflowId STARTS_WITH '{handle.id}'")]
    replayer = build_replayer()
    for history in histories:
        await replayer.replay_workflow(history)
    assert histories
