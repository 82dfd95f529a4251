"""Runs from your code: `BatonClient` (one connected Temporal client, and every
operation on runs through it), `baton.run`/`baton.start` (a durable run of an agent,
team or flow), `RunHandle`/`RunOutcome` (what they give back) and `baton.worker` (a
worker for your agents, tools and flows, in this process).

    client = await BatonClient.connect()     # TEMPORAL_ADDRESS, else localhost:7233
    handle = await client.start(support_desk, "Refund 250 USD on order A-1001")
    for waiting in await client.pending():
        await client.approve(waiting.workflow_id)
    outcome = await handle.result()

The starter and the HTTP front (baton/cli/, baton/web/) are front-ends over this
object; `baton.run`, `baton.start`, `baton.approve`... are the same operations, each
on a client of its own unless given one.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Generic, TypedDict, TypeVar, Unpack

from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.worker import Worker

from baton.core.model_io import Message, ModelRef
from baton.core.runs import (
    ApprovalRequest,
    Decision,
    RunOptions,
    RunResult,
    ToolCallRecord,
)
from baton.core.session_io import SessionLimits, SessionState, SessionSummary, TurnAnswer
from baton.core.specs import Catalogue
from baton.core.steps import install_client_run
from baton.core.tools import Tool
from baton.core.usage import Budget, Usage
from baton.define.api import Member
from baton.define.app import collect_guardrails, collect_mcp_servers, collect_tools
from baton.define.flows import Flow, FlowResult
from baton.runtime import approvals, recovery, sessions, streaming
from baton.runtime.approver_keys import SigningKey
from baton.runtime.launch import (
    RESULT_TYPES,
    PlannedFlow,
    PlannedRun,
    plan_flow,
    plan_run,
    start_flow,
    start_run,
)
from baton.runtime.listing import ListedRun, RunQuery, list_runs
from baton.runtime.temporal import Settings, build_worker, connect, ui_url
from baton.runtime.watch import Item, Notice, events
from baton.telemetry.metrics import known_catalogue
from baton.telemetry.search import ensure_search_attributes, patch_activation

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
    """A started run: its workflow id, its Web UI link, and its result when it ends.
    `target` (the agent, team or flow) types the result's `output`; a handle found by
    id alone (`BatonClient.handle`) has none, and its outcome's `output` is None."""

    target: Member | Flow[Any] | None
    handle: WorkflowHandle[Any, Any]
    link: str

    @property
    def workflow_id(self) -> str:
        return self.handle.id

    async def result(self) -> RunOutcome[Any]:
        result = typed_result(await self.handle.result())
        model = self.target.output_model(result) if self.target is not None else None
        output = (model.model_validate(result.output)
                  if model is not None and result.output is not None else None)
        return RunOutcome(result=result, output=output, workflow_id=self.handle.id,
                          link=self.link)


def typed_result(value: Any) -> RunResult:
    """A run's result as its pattern's result type (a handle found by id gets JSON)."""
    if isinstance(value, RunResult):
        return value
    pattern = value.get("pattern") if isinstance(value, dict) else None
    kind = FlowResult if pattern == "flow" else RESULT_TYPES.get(pattern or "", RunResult)
    return kind.model_validate(value)


class StartOptions(TypedDict, total=False):
    """How a run starts: `task_queue` (default: BATON_TASK_QUEUE, else "baton"); `items`
    (a map fan-out's inputs); `model` runs every agent on one model (the starter's
    --model); the budget keywords override `budget`'s fields; `deadline` is in
    seconds; `workflow_id` (default: readable, from the team and prompt); `stream`:
    the models' text is published as it comes, for `stream(handle)`."""

    task_queue: str | None
    items: Sequence[str] | None
    model: str | None
    budget: Budget | None
    max_tokens: int | None
    max_calls: int | None
    max_usd: float | None
    max_tool_calls: int | None
    deadline: float | None
    workflow_id: str | None
    stream: bool


class BatonClient:
    """One connected Temporal client, and every operation on Baton's runs through it.

    Build it from a client you connected (`BatonClient(client)`; Baton's data converter
    must be on it, as `BatonPlugin` or `baton.runtime.temporal.connect` set it) or
    with `await BatonClient.connect()`. `settings` give the task queue runs start on
    and where Web UI links point (default: from the environment).
    """

    def __init__(self, client: Client, *, settings: Settings | None = None) -> None:
        self.client = client
        self.settings = settings or Settings.from_env()

    @classmethod
    async def connect(cls, address: str | None = None, namespace: str | None = None, *,
                      settings: Settings | None = None) -> BatonClient:
        """Connect as the starter does (TLS, API key, tracing, codec from the
        environment), to `address` and `namespace` when given."""
        settings = settings or Settings.from_env()
        if address is not None:
            settings = dataclasses.replace(settings, address=address,
                                           ui_url=ui_url(address, os.environ))
        if namespace is not None:
            settings = dataclasses.replace(settings, namespace=namespace)
        return cls(await connect(settings), settings=settings)

    @property
    def task_queue(self) -> str:
        return self.settings.task_queue

    def link(self, workflow_id: str) -> str:
        """The run's page in Temporal's Web UI."""
        return self.settings.workflow_link(workflow_id)

    # --- runs -------------------------------------------------------------------------

    async def start(self, target: Member | Flow[Any],
                    prompt: str | Sequence[Message] | dict[str, Any],
                    **options: Unpack[StartOptions]) -> RunHandle:
        """Start a run of `target` without waiting: its handle (workflow id, Web UI
        link, result). A flow takes its arguments as text or a dict."""
        return await self.start_planned(target, planned_start(target, prompt, options),
                                        options.get("task_queue"))

    async def start_planned(self, target: Member | Flow[Any], planned: PlannedRun | PlannedFlow,
                            task_queue: str | None = None) -> RunHandle:
        """Start what `planned_start` validated."""
        queue = task_queue or self.task_queue
        handle: WorkflowHandle[Any, Any]
        if isinstance(planned, PlannedFlow):
            handle = await start_flow(self.client, queue, planned)
        else:
            handle = await start_run(self.client, queue, planned)
        return RunHandle(target=target, handle=handle, link=self.link(handle.id))

    async def run(self, target: Member | Flow[Any],
                  prompt: str | Sequence[Message] | dict[str, Any],
                  **options: Unpack[StartOptions]) -> RunOutcome[Any]:
        """Run `target` on `prompt` and wait for its typed result."""
        return await (await self.start(target, prompt, **options)).result()

    def handle(self, workflow_id: str, target: Member | Flow[Any] | None = None) -> RunHandle:
        """A run by its workflow id; `target` (what it runs) types its outcome's output."""
        return RunHandle(target=target, handle=self.client.get_workflow_handle(workflow_id),
                         link=self.link(workflow_id))

    async def outcome(self, workflow_id: str,
                      target: Member | Flow[Any] | None = None) -> RunOutcome[Any]:
        """A run's outcome by its workflow id, once it ends."""
        return await self.handle(workflow_id, target).result()

    async def list_runs(self, query: RunQuery | None = None) -> list[ListedRun]:
        """Runs by team, pattern, status and age, newest first (`RunQuery()`: the latest
        20 top-level runs). ListRefused when the namespace cannot answer the query."""
        return await list_runs(self.client, query or RunQuery(), self.link)

    # --- people deciding --------------------------------------------------------------

    async def pending(self, *, unreadable: list[str] | None = None) -> list[approvals.Waiting]:
        """Every run waiting for a person (see `baton.runtime.approvals.pending`)."""
        return await approvals.pending(self.client, unreadable=unreadable)

    async def pending_requests(self, workflow_id: str) -> list[ApprovalRequest]:
        """What a run and its nested runs wait for, with full arguments, asked of the runs
        themselves (a worker must run them)."""
        return await approvals.pending_in_tree(self.client, workflow_id)

    async def decide(self, workflow_id: str, decision: Decision, *,
                     key: SigningKey | None = None) -> approvals.Delivery:
        """Deliver a decision, signed with `key` when given (ApprovalError says why not)."""
        return await approvals.decide(self.client, workflow_id, decision, key=key)

    async def approve(self, workflow_id: str, request: str | None = None, note: str = "", *,
                      by: str = "", key: SigningKey | None = None) -> approvals.Delivery:
        """Approve one pending request of a run, or all of them; signed with `key`
        (default: BATON_APPROVER_KEY when set)."""
        return await approvals.approve(workflow_id, request, note, by=by, client=self.client,
                                       key=key)

    async def reject(self, workflow_id: str, reason: str, request: str | None = None, *,
                     by: str = "", key: SigningKey | None = None) -> approvals.Delivery:
        """Reject one pending request of a run, or all of them; the agent is told `reason`."""
        return await approvals.reject(workflow_id, reason, request, by=by, client=self.client,
                                      key=key)

    # --- sessions ---------------------------------------------------------------------

    async def send_turn(self, session_id: str, team: str | Member, message: str,
                        catalogue: Catalogue | None = None, *, options: RunOptions | None = None,
                        limits: SessionLimits | None = None,
                        task_queue: str | None = None) -> TurnAnswer:
        """One turn of session `session_id`, starting it if new (see
        `baton.runtime.sessions.send_turn`)."""
        return await sessions.send_turn(self.client, session_id, team, message, catalogue,
                                        task_queue or self.task_queue, options=options,
                                        limits=limits)

    async def end_session(self, session_id: str, reason: str = "") -> SessionSummary:
        return await sessions.end_session(self.client, session_id, reason)

    async def session_state(self, session_id: str) -> SessionState:
        return await sessions.session_state(self.client, session_id)

    # --- following a run --------------------------------------------------------------

    def stream(self, run: str | RunHandle | WorkflowHandle[Any, Any], *,
               after: int | None = None) -> AsyncIterator[streaming.StreamEvent]:
        """The run's text and steps as they come (see `baton.runtime.streaming`)."""
        return streaming.stream(run, client=self.client, after=after)

    def watch(self, workflow_id: str, *, from_offsets: dict[str, int] | None = None,
              on_notice: Notice | None = None) -> AsyncIterator[Item]:
        """`(workflow_id, offset, RunEvent)` of the run and its nested runs, as `starter.py
        watch` shows them (see `baton.runtime.watch.events`)."""
        return events(self.client, workflow_id, from_offsets=from_offsets,
                      on_notice=on_notice)

    # --- history, replay, reset -------------------------------------------------------

    async def history(self, workflow_id: str) -> WorkflowHistory:
        """The run's event history as recorded (what `replay` and `--file` read)."""
        return await recovery.fetch_history(self.client, workflow_id)

    async def histories(self, workflow_id: str) -> list[WorkflowHistory]:
        """The run's history and every nested run's."""
        return await recovery.run_histories(self.client, workflow_id)

    async def readable_history(self, workflow_id: str) -> recovery.Readable:
        """The run's history as JSON, its payloads decoded with this client's converter
        (and key)."""
        return await recovery.readable(await self.history(workflow_id),
                                       self.client.data_converter)

    async def replay(self, run: str | Sequence[WorkflowHistory]) -> list[recovery.ReplayReport]:
        """Replay a run and its nested runs (or the histories given) against this
        process's workflow code; a report per history, never raising for nondeterminism."""
        histories = await self.histories(run) if isinstance(run, str) else list(run)
        return await recovery.replay(histories)

    async def reset(self, workflow_id: str, *, force: bool = False) -> recovery.ResetReport:
        """Restart a failed run from just after its last completed call."""
        return await recovery.reset(self.client, workflow_id, force=force)


def planned_start(target: Member | Flow[Any], prompt: str | Sequence[Message] | dict[str, Any],
                  options: StartOptions) -> PlannedRun | PlannedFlow:
    """What starting `target` on `prompt` would start, validated before any connection
    (RunRefused, TypeError or ValueError say what was wrong)."""
    model = options.get("model")
    workflow_id = options.get("workflow_id")
    if isinstance(target, Flow):
        if model is not None:
            ModelRef.parse(model)  # ValueError naming what is accepted
        if not isinstance(prompt, str | dict):
            raise TypeError(f"flow {target.name!r} takes its arguments as a string or a dict")
        return plan_flow(target, prompt, _run_options(Budget(), options),
                         workflow_id=workflow_id)
    if isinstance(prompt, dict):
        raise TypeError(f"{target.name!r} takes a prompt (a string or messages), not a dict")
    catalogue = target.catalogue()
    if model is not None:
        catalogue = catalogue.with_model(model)
    messages = ([Message(role="user", content=prompt)] if isinstance(prompt, str)
                else list(prompt))
    items = options.get("items")
    return plan_run(catalogue, target.name, messages, _run_options(catalogue.budget, options),
                    items=list(items) if items is not None else None, workflow_id=workflow_id)


def _run_options(default_budget: Budget, options: StartOptions) -> RunOptions:
    return RunOptions(model_override=options.get("model"),
                      budget=_budget(options.get("budget") or default_budget, options),
                      stream=options.get("stream", False))


def _budget(budget: Budget, options: StartOptions) -> Budget:
    """`budget` with the keyword limits over its fields; a bad limit refused before
    anything starts."""
    return budget.limited(max_tokens=options.get("max_tokens"),
                          max_calls=options.get("max_calls"), max_usd=options.get("max_usd"),
                          max_tool_calls=options.get("max_tool_calls"),
                          max_seconds=options.get("deadline"))


async def _client(client: Client | None) -> BatonClient:
    return BatonClient(client) if client is not None else await BatonClient.connect()


async def start(target: Member | Flow[Any], prompt: str | Sequence[Message] | dict[str, Any], *,
                client: Client | None = None, **options: Unpack[StartOptions]) -> RunHandle:
    """Start a run of `target` without waiting: its workflow id and Web UI link.

    Connects to TEMPORAL_ADDRESS (default localhost:7233) unless given a `client`;
    the other keywords are `StartOptions`.
    """
    planned = planned_start(target, prompt, options)  # bad input: refused before connecting
    return await (await _client(client)).start_planned(target, planned,
                                                       options.get("task_queue"))


async def run(target: Member | Flow[Any], prompt: str | Sequence[Message] | dict[str, Any], *,
              client: Client | None = None, **options: Unpack[StartOptions]) -> RunOutcome[Any]:
    """Run `target` on `prompt` and wait for its typed result (keywords as `start`)."""
    return await (await start(target, prompt, client=client, **options)).result()


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


# agent.run, team.run and flow.run outside a workflow start a run through here
# (baton/core/steps.py).
install_client_run(run)
