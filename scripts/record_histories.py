"""Record the histories the test suite replays (tests/histories/*.json).

    .venv/bin/python scripts/record_histories.py      # or: make histories
    .venv/bin/python scripts/record_histories.py flow-tale   # only the cases named

Runs each pattern once on a throwaway dev server (offline models, fixed inputs),
plus one run that fails on a provider outage, and writes every workflow's history.
Re-record only when a change to workflow code is meant to change its commands; then
runs started before the change can no longer be replayed (use workflow versioning).
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.client import WorkflowFailureError  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from baton.core.model_io import Chaos, Message  # noqa: E402
from baton.core.runs import (  # noqa: E402
    PATTERN_WORKFLOWS,
    RunInput,
    RunOptions,
    RunResult,
)
from baton.define.app import load_app  # noqa: E402
from baton.define.catalogue import load_catalogue  # noqa: E402
from baton.define.flows import FLOWS, FlowInput, FlowResult  # noqa: E402
from baton.runtime.temporal import build_worker, exit_now, start_dev_environment  # noqa: E402

OUT = ROOT / "tests" / "histories"
CASES = [
    ("triage", "support_desk", "My invoice shows the wrong amount", None, ""),
    ("fanout", "research_panel", "Is Rust faster than Go?", None, ""),
    ("supervisor", "dev_team", "Write a date parser, then revise it", None, ""),
    ("pipeline", "article_pipeline", "Durable execution",
     Chaos(rejection_rate=1.0, agents=["editor"], faulty_tries=1), ""),
    ("composed", "concierge_desk", "Research and compare vector databases", None, ""),
    ("pipeline-failed", "article_pipeline", "Durable execution", None, "offline:fast"),
    ("coordinator", "research_coordinator", "Is Rust faster than Go?", None, ""),
    ("tools", "support", "Status of order A-1001, with a report", None, ""),
]
# The app whose tools the "tools" case uses (its agents join the default catalogue).
TOOL_APP = "tests.data.tool_app"
# Flows of tests/flow_app.py: (case name, flow, input); the replay imports that module.
FLOW_APP = "tests.flow_app"
FLOW_CASES = [("flow-tale", "tale", "a lighthouse keeper")]


async def main(only: list[str]) -> int:
    env = await start_dev_environment()
    app = load_app(TOOL_APP)
    flow_app = load_app(FLOW_APP)
    cases = [c for c in CASES if not only or c[0] in only]
    flow_cases = [c for c in FLOW_CASES if not only or c[0] in only]
    default = load_catalogue()
    tools = app.catalogue()
    catalogue = default.model_copy(update={"agents": {**default.agents, **tools.agents},
                                           "tools": tools.tools})
    for spec in catalogue.agents.values():
        spec.retry.max_attempts = 2
        spec.retry.initial_interval_s = 0.1
    OUT.mkdir(parents=True, exist_ok=True)
    # Only the cases recorded here are replaced; others (e.g. session-*.json, recorded
    # by tests/test_session.py's steps) are kept.
    for name in [c[0] for c in cases] + [c[0] for c in flow_cases]:
        for old in OUT.glob(f"{name}-[0-9]*.json"):
            old.unlink()
    try:
        async with build_worker(env.client, "record", tools=[*app.tools, *flow_app.tools]):
            for name, flow, text in flow_cases:
                workflow_id = f"{name}-{uuid.uuid4().hex[:6]}"
                await env.client.execute_workflow(
                    flow, FlowInput(arguments=FLOWS[flow].arguments_from_text(text),
                                    prompt=text),
                    id=workflow_id, task_queue="record", result_type=FlowResult)
                await write_histories(env, name, workflow_id)
            for name, member, prompt, chaos, outage in cases:
                os.environ["BATON_OFFLINE_OUTAGE"] = outage
                run = RunInput(member=member, messages=[Message(role="user", content=prompt)],
                               catalogue=catalogue.closure(member),
                               options=RunOptions(chaos=chaos))
                workflow_id = f"{name}-{uuid.uuid4().hex[:6]}"
                try:
                    await env.client.execute_workflow(
                        PATTERN_WORKFLOWS[catalogue.pattern_of(member)], run, id=workflow_id,
                        task_queue="record", result_type=RunResult)
                except WorkflowFailureError:
                    assert outage, f"{name} failed unexpectedly"
                await write_histories(env, name, workflow_id)
    finally:
        await env.shutdown()
    return 0


async def write_histories(env: WorkflowEnvironment, name: str, workflow_id: str) -> None:
    """The histories of a run and its nested runs, as NAME-0.json, NAME-1.json, ..."""
    ids = [w.id async for w in env.client.list_workflows(
        f"WorkflowId STARTS_WITH '{workflow_id}'")]
    for index, wid in enumerate(sorted(ids)):
        history = await env.client.get_workflow_handle(wid).fetch_history()
        (OUT / f"{name}-{index}.json").write_text(history.to_json())
    print(f"{name}: {len(ids)} histories")


if __name__ == "__main__":
    exit_now(asyncio.run(main(sys.argv[1:])))
