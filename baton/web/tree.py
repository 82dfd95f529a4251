"""A run as a tree, read from its history: what the console draws and the report prints.

`run_tree(client, workflow_id)` fetches the history of the run and of every nested
run it started (child workflows, recursively) and turns each into a node: the run,
and in it, in order, its model calls (agent, model, tokens, cost; a router's
handoff), tool calls (arguments and result), guardrail checks, approvals (asked,
decided, by whom) and nested runs. Every node has its start and end time, so a
reader sees where the time went. The history is the one record of a run that never
disagrees with what happened, is there while the run is live and after it ended, and
needs no worker to be read; one module computes the tree, so the live console and
the report show the same thing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from baton.core.guardrails import GUARDRAIL_ACTIVITY_PREFIX
from baton.core.runs import ApprovalRequest
from baton.core.text import shorten

NodeKind = Literal["run", "model", "tool", "guardrail", "check", "approval", "wait"]
# A run's own statuses (baton.core.runs.Status), and how an activity or a wait ended.
NodeStatus = Literal["running", "waiting", "ok", "degraded", "budget_exhausted", "blocked",
                     "failed", "canceled", "terminated", "timed_out", "continued"]
MODEL_ACTIVITY = "call_model"
# Nested runs of one tree are read at most this many at a time (a fan-out of 500).
CONCURRENT_READS = 8
SUMMARY_CHARS = 240


class TreeError(LookupError):
    """No run with that id: the message says which."""


class TreeNode(BaseModel):
    """One step of a run (or a nested run, whose steps are its children)."""

    id: str
    kind: NodeKind
    title: str
    agent: str = ""
    model: str | None = None
    status: NodeStatus = "ok"
    started_at: datetime
    ended_at: datetime | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    # None: a price this run does not know (never shown as $0).
    cost_usd: float | None = 0.0
    attempts: int = 1
    # One line: a route and why, a tool's arguments and result, an answer's start.
    summary: str = ""
    # A contract's output, a tool's arguments, a decision: shown as fields.
    fields: dict[str, Any] | None = None
    workflow_id: str | None = None
    children: list[TreeNode] = Field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add_usage(self, usage: dict[str, Any]) -> None:
        self.input_tokens += int(usage.get("input_tokens") or 0)
        self.output_tokens += int(usage.get("output_tokens") or 0)
        cost = usage.get("cost_usd")
        self.cost_usd = None if cost is None or self.cost_usd is None else self.cost_usd + cost

    def total(self) -> None:
        """A run's spending is its steps' spending (nested runs' included)."""
        for child in self.children:
            if child.kind == "run":
                child.total()
            if self.kind == "run":
                self.add_usage({"input_tokens": child.input_tokens,
                                "output_tokens": child.output_tokens,
                                "cost_usd": child.cost_usd})


class RunTree(BaseModel):
    """The tree of one run, with what a reader needs to draw its time line."""

    root: TreeNode
    # Where the run's answer and the full history are (Temporal Web UI), per workflow.
    links: dict[str, str] = Field(default_factory=dict)
    prompt: str = ""
    answer: str | None = None
    output: dict[str, Any] | None = None
    error: str | None = None
    read_at: datetime

    @property
    def ended_at(self) -> datetime:
        return self.root.ended_at or self.read_at


async def run_tree(client: Client, workflow_id: str, *,
                   link: Callable[[str], str] | None = None,
                   pending: list[ApprovalRequest] | None = None) -> RunTree:
    """The tree of `workflow_id` and its nested runs, as their histories stand now.
    `pending`: requests known to wait (the console asks the run), shown with the wait."""
    reader = _Reader(client, asyncio.Semaphore(CONCURRENT_READS), pending or [])
    root = await reader.read(workflow_id, title=None)
    if root is None:
        raise TreeError(f"no run {workflow_id!r} in namespace {client.namespace!r}")
    root.total()
    links = {wid: link(wid) for wid in reader.workflow_ids} if link else {}
    return RunTree(root=root, links=links, prompt=reader.prompts.get(workflow_id, ""),
                   answer=reader.answers.get(workflow_id),
                   output=reader.outputs.get(workflow_id), error=reader.errors.get(workflow_id),
                   read_at=_now(root))


def _now(root: TreeNode) -> datetime:
    return datetime.now(UTC) if root.ended_at is None else root.ended_at


class _Reader:
    """Reads histories and builds nodes; remembers each run's answer for the root."""

    def __init__(self, client: Client, gate: asyncio.Semaphore,
                 pending: list[ApprovalRequest]) -> None:
        self.client = client
        self.gate = gate
        self.pending = pending
        self.workflow_ids: list[str] = []
        self.prompts: dict[str, str] = {}
        self.answers: dict[str, str] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, str] = {}

    async def read(self, workflow_id: str, title: str | None) -> TreeNode | None:
        async with self.gate:
            try:
                history = await self.client.get_workflow_handle(workflow_id).fetch_history()
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    return None
                raise
        self.workflow_ids.append(workflow_id)
        run = _RunBuilder(self, workflow_id, title)
        for event in history.events:
            await run.add(event)
        await run.finish()
        return run.node

    async def decode(self, payload: Payload) -> Any:
        [value] = await self.client.data_converter.decode([payload])
        return value


class _RunBuilder:
    """Turns the events of one workflow's history into its node."""

    def __init__(self, reader: _Reader, workflow_id: str, title: str | None) -> None:
        self.reader = reader
        self.workflow_id = workflow_id
        self.title = title
        self.node: TreeNode | None = None
        self.steps: dict[int, TreeNode] = {}  # by the scheduling event's id
        self.children: dict[int, asyncio.Task[TreeNode | None]] = {}
        self.open_wait: TreeNode | None = None

    @property
    def run(self) -> TreeNode:
        assert self.node is not None, "a history starts with WORKFLOW_EXECUTION_STARTED"
        return self.node

    async def add(self, event: HistoryEvent) -> None:
        handler = _HANDLERS.get(event.event_type)
        if handler is not None:
            await handler(self, event)

    async def summary(self, event: HistoryEvent) -> str:
        if not event.HasField("user_metadata") or not event.user_metadata.HasField("summary"):
            return ""
        return str(await self.reader.decode(event.user_metadata.summary))

    def step(self, event: HistoryEvent, kind: NodeKind, title: str, **fields: Any) -> TreeNode:
        node = TreeNode(id=f"{self.workflow_id}#{event.event_id}", kind=kind, title=title,
                        started_at=event.event_time.ToDatetime(tzinfo=UTC), status="running",
                        **fields)
        self.run.children.append(node)
        self.steps[event.event_id] = node
        return node

    def close(self, node: TreeNode | None, event: HistoryEvent, status: NodeStatus) -> None:
        if node is not None:
            node.ended_at = event.event_time.ToDatetime(tzinfo=UTC)
            node.status = status

    # --- the run itself ---------------------------------------------------------

    async def started(self, event: HistoryEvent) -> None:
        attrs = event.workflow_execution_started_event_attributes
        run_input: Any = None
        if attrs.input.payloads:
            run_input = await self.reader.decode(attrs.input.payloads[0])
        member = run_input.get("member") if isinstance(run_input, dict) else None
        title = self.title or member or attrs.workflow_type.name
        prompt = self.reader.prompts[self.workflow_id] = _prompt_of(run_input)
        self.node = TreeNode(id=self.workflow_id, kind="run", title=title, agent=member or "",
                             status="running", workflow_id=self.workflow_id,
                             started_at=event.event_time.ToDatetime(tzinfo=UTC),
                             summary=shorten(prompt, SUMMARY_CHARS) if prompt else "",
                             model=attrs.workflow_type.name)

    async def completed(self, event: HistoryEvent) -> None:
        payloads = event.workflow_execution_completed_event_attributes.result.payloads
        result = await self.reader.decode(payloads[0]) if payloads else None
        status: NodeStatus = "ok"
        if isinstance(result, dict):
            if isinstance(answer := result.get("answer"), str):
                self.reader.answers[self.workflow_id] = answer
                self.run.summary = shorten(answer, SUMMARY_CHARS)
            if isinstance(output := result.get("output"), dict):
                self.reader.outputs[self.workflow_id] = output
                self.run.fields = output
                self.run.summary = fields_line(output)
            status = _run_status(result.get("status"))
        elif result is not None:  # a flow's own return value
            self.run.summary = shorten(_text(result), SUMMARY_CHARS)
            self.reader.answers[self.workflow_id] = _text(result)
        self.close(self.run, event, status)

    async def failed(self, event: HistoryEvent) -> None:
        failure = event.workflow_execution_failed_event_attributes.failure
        self.reader.errors[self.workflow_id] = failure.message
        self.run.summary = shorten(failure.message, SUMMARY_CHARS)
        self.close(self.run, event, "failed")

    async def ended(self, event: HistoryEvent) -> None:
        self.close(self.run, event, _ENDINGS[event.event_type])

    async def finish(self) -> None:
        for scheduled, task in self.children.items():
            child = await task
            if child is not None:
                placeholder = self.steps[scheduled]
                child.id, child.started_at = placeholder.id, placeholder.started_at
                self.run.children[self.run.children.index(placeholder)] = child
        if self.open_wait is not None and self.run.ended_at is None:
            self._show_pending(self.open_wait)
        if self.run.ended_at is None and any(c.status == "waiting" for c in self.run.children):
            self.run.status = "waiting"

    # --- activities -------------------------------------------------------------

    async def activity_scheduled(self, event: HistoryEvent) -> None:
        attrs = event.activity_task_scheduled_event_attributes
        kind_name = attrs.activity_type.name
        summary = await self.summary(event)
        agent, _, what = summary.partition(" · ")
        kind: NodeKind = ("model" if kind_name == MODEL_ACTIVITY else
                          "guardrail" if kind_name.startswith(GUARDRAIL_ACTIVITY_PREFIX)
                          else "tool")
        node = self.step(event, kind, what or kind_name, agent=agent if what else "")
        if kind == "model":
            node.title, node.model = agent or kind_name, what or None
        elif kind == "tool" and attrs.input.payloads:
            call = await self.reader.decode(attrs.input.payloads[0])
            if isinstance(call, dict) and isinstance(call.get("arguments"), dict):
                node.title = kind_name
                node.fields = call["arguments"]

    async def activity_started(self, event: HistoryEvent) -> None:
        attrs = event.activity_task_started_event_attributes
        if (node := self.steps.get(attrs.scheduled_event_id)) is not None:
            node.attempts = max(1, attrs.attempt)

    async def activity_completed(self, event: HistoryEvent) -> None:
        attrs = event.activity_task_completed_event_attributes
        node = self.steps.get(attrs.scheduled_event_id)
        result = (await self.reader.decode(attrs.result.payloads[0])
                  if attrs.result.payloads else None)
        if node is None:
            return
        self.close(node, event, "ok")
        if isinstance(result, dict):
            _describe_result(node, result)

    async def activity_failed(self, event: HistoryEvent) -> None:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            attrs: Any = event.activity_task_failed_event_attributes
            message = attrs.failure.message
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            attrs = event.activity_task_timed_out_event_attributes
            message = f"timed out: {attrs.failure.message}"
        else:
            attrs = event.activity_task_canceled_event_attributes
            message = "canceled"
        node = self.steps.get(attrs.scheduled_event_id)
        self.close(node, event, "failed")
        if node is not None:
            node.summary = shorten(message, SUMMARY_CHARS)

    async def local_activity(self, event: HistoryEvent) -> None:
        attrs = event.marker_recorded_event_attributes
        if attrs.marker_name != "core_local_activity":
            return
        summary = await self.summary(event)
        data: Any = {}
        if "data" in attrs.details and attrs.details["data"].payloads:
            data = await self.reader.decode(attrs.details["data"].payloads[0])
        name = data.get("activity_type", "") if isinstance(data, dict) else ""
        agent, _, what = summary.partition(" · ")
        node = self.step(event, "check" if "policy" in (summary + name) else "tool",
                         what or summary or name, agent=agent if what else "")
        node.attempts = int(data.get("attempt", 1)) if isinstance(data, dict) else 1
        self.close(node, event, "ok" if not attrs.HasField("failure") else "failed")

    # --- nested runs ------------------------------------------------------------

    async def child_initiated(self, event: HistoryEvent) -> None:
        attrs = event.start_child_workflow_execution_initiated_event_attributes
        summary = await self.summary(event)
        _, _, member = summary.partition(" · ")
        child_id = attrs.workflow_id
        placeholder = self.step(event, "run", member or child_id.rsplit("/", 1)[-1],
                                workflow_id=child_id)
        self.children[event.event_id] = asyncio.create_task(
            self.reader.read(child_id, title=placeholder.title))

    # --- people and timers ------------------------------------------------------

    async def timer_started(self, event: HistoryEvent) -> None:
        summary = await self.summary(event)
        self.open_wait = self.step(event, "wait", summary or "waiting")
        self.open_wait.status = "waiting"

    async def timer_closed(self, event: HistoryEvent) -> None:
        fired = event.event_type == EventType.EVENT_TYPE_TIMER_FIRED
        wait = self.open_wait
        if wait is not None and wait.ended_at is None:
            self.close(wait, event, "timed_out" if fired and wait.kind == "approval" else "ok")
            if wait.kind == "wait" and fired:
                wait.status = "ok"
        self.open_wait = None

    async def update_completed(self, event: HistoryEvent) -> None:
        attrs = event.workflow_execution_update_completed_event_attributes
        outcome = attrs.outcome
        if not outcome.HasField("success") or not outcome.success.payloads:
            return
        records = await self.reader.decode(outcome.success.payloads[0])
        if not isinstance(records, list) or not records or not isinstance(records[0], dict) \
                or "approved" not in records[0]:
            return  # another update (a session's turn, a stream's poll)
        for record in records:
            node = self._approval_node(event, record)
            approved = bool(record.get("approved"))
            by = record.get("decided_by") or "a person"
            why = record.get("note") if approved else record.get("reason")
            node.summary = (f"{'approved' if approved else 'rejected'} by {by}"
                            + (f": {why}" if why else ""))
            node.status = "ok" if approved else "failed"
            node.ended_at = event.event_time.ToDatetime(tzinfo=UTC)

    def _approval_node(self, event: HistoryEvent, record: dict[str, Any]) -> TreeNode:
        request = record.get("request") or {}
        wait = self.open_wait
        if wait is None or (wait.kind == "approval" and wait.ended_at is not None):
            wait = self.step(event, "approval", "")
        wait.kind = "approval"
        wait.title = f"approval · {request.get('subject', '')}"
        wait.agent = str(request.get("agent", ""))
        wait.fields = request.get("arguments") or None
        return wait

    def _show_pending(self, wait: TreeNode) -> None:
        mine = [r for r in self.reader.pending if r.workflow_id == self.workflow_id]
        if not mine:
            return
        request = mine[0]
        wait.kind, wait.status = "approval", "waiting"
        wait.title = f"approval · {request.subject}"
        wait.agent = request.agent
        wait.fields = request.arguments
        wait.summary = f"waiting for a person: {request.why}"


def _describe_result(node: TreeNode, result: dict[str, Any]) -> None:
    """What a completed activity said, in one line and some fields."""
    if node.kind == "model":
        node.model = result.get("model") or node.model
        if isinstance(usage := result.get("usage"), dict):
            node.add_usage(usage)
        parsed = result.get("parsed")
        calls = result.get("tool_calls") or []
        if isinstance(parsed, dict) and "route" in parsed:
            node.summary = shorten(f"→ {parsed['route']}: {parsed.get('reason', '')}",
                                   SUMMARY_CHARS)
        elif calls:
            node.summary = "asked for " + ", ".join(str(c.get("name")) for c in calls)
        elif isinstance(parsed, dict):
            node.fields = parsed
            node.summary = fields_line(parsed)
        else:
            node.summary = shorten(str(result.get("text") or ""), SUMMARY_CHARS)
    elif node.kind == "tool":
        content = result.get("content")
        node.summary = shorten(_text(content), SUMMARY_CHARS) if content is not None else ""
        if result.get("ok") is False:
            node.status = "failed"
    elif node.kind == "guardrail":
        allowed = result.get("allowed")
        node.summary = shorten(str(result.get("reason") or ""), SUMMARY_CHARS)
        if allowed is False:
            node.status = "blocked"


def fields_line(fields: dict[str, Any]) -> str:
    """A contract's output in one line: `key: value · key: value`."""
    parts = [f"{key}: {value if isinstance(value, str) else _text(value)}"
             for key, value in fields.items()]
    return shorten(" · ".join(parts), SUMMARY_CHARS)


def _prompt_of(run_input: Any) -> str:
    if not isinstance(run_input, dict):
        return ""
    if isinstance(prompt := run_input.get("prompt"), str):  # a flow's input
        return prompt
    messages = run_input.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        return str(messages[-1].get("content", ""))
    return ""


def _run_status(status: Any) -> NodeStatus:
    known: dict[Any, NodeStatus] = {"ok": "ok", "degraded": "degraded", "blocked": "blocked",
                                    "budget_exhausted": "budget_exhausted", "failed": "failed"}
    return known.get(status, "ok")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


_ENDINGS: dict[int, NodeStatus] = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed_out",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "canceled",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continued",
}
_Handler = Callable[[_RunBuilder, HistoryEvent], Any]
_HANDLERS: dict[int, _Handler] = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: _RunBuilder.started,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: _RunBuilder.completed,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: _RunBuilder.failed,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: _RunBuilder.ended,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: _RunBuilder.ended,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: _RunBuilder.ended,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: _RunBuilder.ended,
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: _RunBuilder.activity_scheduled,
    EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED: _RunBuilder.activity_started,
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: _RunBuilder.activity_completed,
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: _RunBuilder.activity_failed,
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: _RunBuilder.activity_failed,
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: _RunBuilder.activity_failed,
    EventType.EVENT_TYPE_MARKER_RECORDED: _RunBuilder.local_activity,
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED: _RunBuilder.child_initiated,
    EventType.EVENT_TYPE_TIMER_STARTED: _RunBuilder.timer_started,
    EventType.EVENT_TYPE_TIMER_FIRED: _RunBuilder.timer_closed,
    EventType.EVENT_TYPE_TIMER_CANCELED: _RunBuilder.timer_closed,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED: _RunBuilder.update_completed,
}
