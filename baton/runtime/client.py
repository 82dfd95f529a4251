"""Runs from your code: `baton.run`/`baton.start` (a durable run of an agent, team or
flow through a Temporal client), `RunHandle`/`RunOutcome` (what they give back) and
`baton.worker` (a worker for your agents, tools and flows, in this process).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from baton.core.model_io import Message, ModelRef
from baton.core.runs import RunResult, ToolCallRecord
from baton.core.tools import Tool
from baton.core.usage import Budget, Usage
from baton.define.api import Member
from baton.define.flows import Flow

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowHandle
    from temporalio.worker import Worker

T = TypeVar("T", bound=BaseModel)


@dataclass
class RunOutcome(Generic[T]):
    """A finished run: `output` is the answering agent's output model, when it has one;
    `answer`, `status`, `reasons`, `usage` (the run's total) and `tool_calls` are the
    result's, and `result` holds the rest (per-agent usage, trace, approvals)."""

    result: RunResult
    output: T | None
    workflow_id: str
    link: str

    @property
    def answer(self) -> str:
        return self.result.answer

    @property
    def status(self) -> str:
        return self.result.status

    @property
    def reasons(self) -> list[str]:
        """Why the run is degraded, blocked, out of budget or failed ([] when ok)."""
        return self.result.reasons

    @property
    def usage(self) -> Usage:
        return self.result.total_usage

    @property
    def tool_calls(self) -> list[ToolCallRecord]:
        """Every tool call of the run and its nested runs, in order."""
        return self.result.tool_calls


@dataclass
class RunHandle:
    """A started run: its workflow id, its Web UI link, and its result when it ends."""

    target: Member | Flow[Any]
    handle: WorkflowHandle[Any, Any]
    link: str

    @property
    def workflow_id(self) -> str:
        return self.handle.id

    async def result(self) -> RunOutcome[Any]:
        result = await self.handle.result()
        model = self.target.output_model(result)
        output = (model.model_validate(result.output)
                  if model is not None and result.output is not None else None)
        return RunOutcome(result=result, output=output, workflow_id=self.handle.id,
                          link=self.link)


async def start(target: Member | Flow[Any], prompt: str | Sequence[Message] | dict[str, Any], *,
                client: Client | None = None, task_queue: str | None = None,
                items: Sequence[str] | None = None, model: str | None = None,
                budget: Budget | None = None, max_tokens: int | None = None,
                max_calls: int | None = None, max_usd: float | None = None,
                max_tool_calls: int | None = None, deadline: float | None = None,
                workflow_id: str | None = None, stream: bool = False) -> RunHandle:
    """Start a run of `target` without waiting: its workflow id and Web UI link.

    Connects to TEMPORAL_ADDRESS (default localhost:7233) unless given a `client`.
    `model` runs every agent on one model (the starter's --model); the budget
    keywords override `budget`'s fields; `deadline` is in seconds. `stream`: the
    models' text is published as it comes, for `baton.stream(handle)`.
    """
    from baton.core.runs import RunOptions
    from baton.runtime.launch import plan_flow, plan_run, start_flow, start_run
    from baton.runtime.temporal import Settings, connect

    settings = Settings.from_env()
    limits = {"max_tokens": max_tokens, "max_calls": max_calls, "max_usd": max_usd,
              "max_tool_calls": max_tool_calls, "max_seconds": deadline}
    if isinstance(target, Flow):
        if model is not None:
            ModelRef.parse(model)  # ValueError naming what is accepted
        flow_budget = (budget or Budget()).model_copy(
            update={k: v for k, v in limits.items() if v is not None})
        Budget.model_validate(flow_budget.model_dump())
        if not isinstance(prompt, str | dict):
            raise TypeError(f"flow {target.name!r} takes its arguments as a string or a dict")
        planned_flow = plan_flow(target, prompt,
                                 RunOptions(model_override=model, budget=flow_budget,
                                            stream=stream),
                                 workflow_id=workflow_id)
        client = client or await connect(settings)
        flow_handle = await start_flow(client, task_queue or settings.task_queue, planned_flow)
        return RunHandle(target=target, handle=flow_handle,
                         link=settings.workflow_link(flow_handle.id))
    if isinstance(prompt, dict):
        raise TypeError(f"{target.name!r} takes a prompt (a string or messages), not a dict")
    catalogue = target.catalogue()
    if model is not None:
        catalogue = catalogue.with_model(model)
    budget = (budget or catalogue.budget).model_copy(
        update={k: v for k, v in limits.items() if v is not None})
    Budget.model_validate(budget.model_dump())  # refuse bad limits before anything starts
    messages = ([Message(role="user", content=prompt)] if isinstance(prompt, str)
                else list(prompt))
    planned = plan_run(catalogue, target.name, messages,
                       RunOptions(model_override=model, budget=budget, stream=stream),
                       items=list(items) if items is not None else None,
                       workflow_id=workflow_id)
    client = client or await connect(settings)
    handle = await start_run(client, task_queue or settings.task_queue, planned)
    return RunHandle(target=target, handle=handle, link=settings.workflow_link(handle.id))


async def run(target: Member | Flow[Any], prompt: str | Sequence[Message] | dict[str, Any],
              **options: Any) -> RunOutcome[Any]:
    """Run `target` on `prompt` and wait for its typed result (keywords as `start`)."""
    handle = await start(target, prompt, **options)
    return await handle.result()


@asynccontextmanager
async def worker(*apps: Member | Tool | Flow[Any] | ModuleType | str,
                 client: Client | None = None,
                 task_queue: str | None = None, **options: Any) -> AsyncIterator[Worker]:
    """Run a worker for your own code inside this process (scripts, notebooks, tests).

        async with baton.worker(support_desk):
            outcome = await baton.run(support_desk, "Where is order A-1001?")

    `apps` are agents, teams, flows, tools, or modules (objects or names) whose tools
    and contracts the worker registers (a flow's are its module's), and whose MCP
    servers it declares (more with `mcp=[baton.MCPServer(...)]`).
    """
    from baton.define.app import collect_guardrails, collect_mcp_servers, collect_tools
    from baton.runtime.temporal import Settings, build_worker, connect
    from baton.telemetry.metrics import known_catalogue
    from baton.telemetry.search import ensure_search_attributes, patch_activation

    settings = Settings.from_env()
    client = client or await connect(settings)
    for app in apps:  # as worker.py does: its agents and teams are metric labels by name
        if isinstance(app, Member):
            known_catalogue(app.catalogue())
    # As worker.py does: register Baton's search attributes, or run without them.
    options.setdefault("patch_activation_callback",
                       patch_activation(await ensure_search_attributes(client)))
    async with build_worker(client, task_queue or settings.task_queue,
                            tools=collect_tools(apps), guardrails=collect_guardrails(apps),
                            mcp=[*collect_mcp_servers(apps), *options.pop("mcp", ())],
                            **options) as running:
        yield running
