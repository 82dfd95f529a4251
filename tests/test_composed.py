"""Composition: triage -> a supervisor whose research worker is a fan-out team."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from baton.core.runs import TriageResult
from tests.helpers import finish, start, worker


async def test_triage_to_supervisor_to_fanout(env: WorkflowEnvironment, task_queue: str) -> None:
    async with worker(env.client, task_queue):
        handle = await start(env.client, task_queue, "concierge_desk",
                             "Please research and compare vector databases",
                             result_type=TriageResult)
        result = await finish(handle)
        runs = {w.id: w.workflow_type async for w in env.client.list_workflows(
            f"WorkflowId STARTS_WITH '{handle.id}'")}
    assert result.handled_by == "project_team"
    assert result.status == "ok"
    team = f"{handle.id}/project_team"
    panel = f"{team}/research_panel"
    assert runs == {
        handle.id: "TriageWorkflow",
        team: "SupervisorWorkflow",
        panel: "FanOutWorkflow",
        f"{panel}/academic": "AgentWorkflow",
        f"{panel}/industry": "AgentWorkflow",
        f"{panel}/news": "AgentWorkflow",
    }
    # usage of every nested agent is folded into the top-level result
    assert set(result.usage) == {"concierge", "lead", "academic", "industry", "news",
                                 "synthesizer", "coder"}
    paths = {s.path for s in result.trace}
    assert paths == {"", "project_team", "project_team/research_panel",
                     "project_team/research_panel/academic",
                     "project_team/research_panel/industry",
                     "project_team/research_panel/news"}


async def test_support_questions_stay_with_specialists(env: WorkflowEnvironment,
                                                       task_queue: str) -> None:
    async with worker(env.client, task_queue):
        handle = await start(env.client, task_queue, "concierge_desk",
                             "I was charged twice on my card", result_type=TriageResult)
        result = await finish(handle)
    assert result.handled_by == "billing"
    assert set(result.usage) == {"concierge", "billing"}
