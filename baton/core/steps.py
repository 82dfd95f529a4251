"""Where a Baton object called from user code goes: a durable step inside a workflow,
or a durable run started through the client outside one.

`agent.run(...)`, `team.run(...)`, a `@baton.tool` called directly and
`baton.approval(...)` are what users write (the define layer), but what they do lives
in the layers above it: inside a workflow, workflows/flow.py turns them into
activities and child workflows; outside one, baton/runtime/client.py starts a run
and waits for it. Each of those modules installs itself here when it is imported
(the workflow layer by any worker that registers Baton's workflows, the client by
`import baton`), so the lower layers call up without importing anything above them.
A worker that checks Baton's workflows in Temporal's sandbox imports the workflow
layer afresh for each run; a flow's run then names that copy's steps on its
workflow instance, since the run's state lives in that copy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from temporalio import workflow


class StepsMissing(RuntimeError):
    """A Baton call was made where the layer that carries it out is not loaded."""


@dataclass(frozen=True)
class WorkflowSteps:
    """The durable steps of workflows/flow.py, as user objects call them."""

    # agent.run(input, *, output, model, isolated, context, max_handoffs) -> AgentResult
    agent: Callable[..., Awaitable[Any]]
    # team.run(input) -> the team's RunResult
    member: Callable[..., Awaitable[Any]]
    # a @baton.tool called with its arguments -> its typed value
    tool: Callable[..., Awaitable[Any]]
    # baton.approval(question, details, *, timeout, default) -> ApprovalRecord
    approval: Callable[..., Awaitable[Any]]


# Starts a run of an agent, team or flow and waits for its outcome (baton.run).
ClientRun = Callable[..., Awaitable[Any]]

_installed: dict[str, Any] = {}


def install_workflow_steps(steps: WorkflowSteps) -> None:
    """Called by workflows/flow.py when it is imported."""
    _installed["steps"] = steps


def install_client_run(run: ClientRun) -> None:
    """Called by baton/runtime/client.py when it is imported."""
    _installed["run"] = run


def workflow_steps() -> WorkflowSteps:
    """The durable steps, inside a workflow: those its workflow names (a flow's run in
    a sandbox that imported the workflow layer afresh), else the installed ones."""
    if not workflow.in_workflow():
        raise StepsMissing(
            "this is a durable step of a run: call it inside a @baton.flow or a workflow "
            "of yours with baton.BatonPlugin; outside one, start a run with baton.run(...)")
    steps: WorkflowSteps | None = (getattr(workflow.instance(), "baton_steps", None)
                                   or _installed.get("steps"))
    if steps is None:
        raise StepsMissing(
            "Baton's workflow steps are not loaded in this worker: build it with "
            "baton.BatonPlugin (Client.connect(plugins=[...])), baton.worker(...) or "
            "python worker.py")
    return steps


def client_run() -> ClientRun:
    """How a run is started and awaited, outside a workflow."""
    run: ClientRun | None = _installed.get("run")
    if run is None:
        raise StepsMissing("Baton's client is not loaded: `import baton` loads it, then "
                           "call agent.run(...) or baton.run(...)")
    return run
