"""History export, replay and reset of runs: what `starter.py history|replay|reset` do.

- export: a run's event history as JSON (the same format as `temporal workflow show
  --output json`), to keep a failed run or commit it as a regression test;
- replay: Temporal's `Replayer` runs today's workflow code against a recorded
  history and reports the first nondeterminism, if any;
- reset: a failed, timed-out or stuck run restarts from just after its last
  completed model call (or nested run), so nothing already paid for is called again;
- readable: a history as JSON with every payload decoded by the client's data
  converter (its codec first, so the client's key decrypts them); a payload this
  client cannot decode stays as recorded, its encoding shown as text, and is counted.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

from temporalio.api.common.v1 import Payload, WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.service import RPCError, RPCStatusCode

from baton.runtime.codec import KEY_ENV, OLD_KEYS_ENV, missing_key_ids, payloads_in
from baton.runtime.temporal import build_replayer
from baton.telemetry.search import nested_runs

RESETTABLE = {
    WorkflowExecutionStatus.FAILED,
    WorkflowExecutionStatus.TIMED_OUT,
    WorkflowExecutionStatus.TERMINATED,
    WorkflowExecutionStatus.CANCELED,
}
COMPLETIONS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
}
FAILURES = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED,
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED,
}


class RecoveryError(Exception):
    """A request that cannot be carried out; nothing was changed on the server."""


@dataclass
class ReplayReport:
    workflow_id: str
    events: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class ResetReport:
    workflow_id: str
    old_run_id: str
    new_run_id: str
    reset_event_id: int
    kept_completions: int


async def fetch_history(client: Client, workflow_id: str) -> WorkflowHistory:
    try:
        return await client.get_workflow_handle(workflow_id).fetch_history()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise RecoveryError(f"no workflow {workflow_id!r} in namespace "
                                f"{client.namespace!r}") from None
        raise


def load_history(path: str, text: str) -> WorkflowHistory:
    """A history from exported JSON; a clear error when it is not one."""
    try:
        data = json.loads(text)
        history = WorkflowHistory.from_json(path, data)
    except (json.JSONDecodeError, TypeError, ValueError, KeyError) as err:
        raise RecoveryError(f"{path} is not a Temporal history (JSON with an 'events' list, "
                            f"as `starter.py history -o` writes): {err}") from None
    if not history.events or not history.events[0].HasField(
            "workflow_execution_started_event_attributes"):
        raise RecoveryError(f"{path} is not a Temporal history: it does not begin with a "
                            "WorkflowExecutionStarted event")
    # Replay needs the run's own id: child workflow ids are derived from it.
    recorded_id = history.events[0].workflow_execution_started_event_attributes.workflow_id
    if not recorded_id:
        raise RecoveryError(f"{path} does not record its workflow id (servers before 1.2x "
                            "leave it out); replay it by id with `starter.py replay <id>`")
    return WorkflowHistory(recorded_id, history.events)


async def replay(histories: list[WorkflowHistory]) -> list[ReplayReport]:
    """Replay each history against this code's workflows; never raises for nondeterminism."""
    try:
        replayer = build_replayer()
    except ValueError as err:  # a bad BATON_ENCRYPTION_KEY
        raise RecoveryError(str(err)) from None
    codec = replayer.config()["data_converter"].payload_codec
    for history in histories:
        # Without the key, replay would fail the run at its first encrypted payload and
        # report that as nondeterminism: say what is missing instead.
        if missing := missing_key_ids(history.events, codec):
            raise RecoveryError(
                f"cannot replay {history.workflow_id}: its payloads are encrypted with key "
                f"id {', '.join(sorted(missing))}, which this process does not hold; set "
                f"{KEY_ENV} (and {OLD_KEYS_ENV} for older keys) as the workers have them")
    reports = []
    for history in histories:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        failure = result.replay_failure
        reports.append(ReplayReport(history.workflow_id, len(history.events),
                                    None if failure is None else f"{failure}"))
    return reports


async def run_histories(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """The run and every nested run below it (children ids start with its id)."""
    histories = [await fetch_history(client, workflow_id)]
    async for child in client.list_workflows(nested_runs(workflow_id)):
        histories.append(await client.get_workflow_handle(child.id).fetch_history())
    return histories


def reset_point(events: list[HistoryEvent]) -> tuple[int, int]:
    """(event id to reset to, completions kept).

    The workflow task that followed the last completed model call or nested run
    before the first failure: resetting there keeps every result recorded up to it
    and no failure, so the run takes up again at the call that failed.
    """
    kept = pending = 0
    target = None
    for event in events:
        if event.event_type in FAILURES:
            break
        if event.event_type in COMPLETIONS:
            pending += 1
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and (
                target is None or pending):
            target = event.event_id
            kept += pending
            pending = 0
    if target is None:
        raise RecoveryError("the run has no completed workflow task to reset to")
    return target, kept


async def reset(client: Client, workflow_id: str, *, force: bool = False) -> ResetReport:
    handle = client.get_workflow_handle(workflow_id)
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise RecoveryError(f"no workflow {workflow_id!r} in namespace "
                                f"{client.namespace!r}") from None
        raise
    status = description.status
    if status not in RESETTABLE and not (force and status == WorkflowExecutionStatus.RUNNING):
        name = status.name.lower() if status else "unknown"
        hint = " (add --force to reset a stuck run)" if name == "running" else ""
        raise RecoveryError(f"workflow {workflow_id!r} is {name}; reset applies to failed, "
                            f"timed-out, terminated or cancelled runs{hint}")
    history = await handle.fetch_history()
    event_id, kept = reset_point(list(history.events))
    response = await client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id,
                                                 run_id=description.run_id),
            reason=f"baton reset: resume after the last completed call (event {event_id})",
            workflow_task_finish_event_id=event_id,
            request_id=str(uuid.uuid4()),
        ))
    return ResetReport(workflow_id, description.run_id, response.run_id, event_id, kept)


# --- readable histories ---------------------------------------------------------------

# Marks a payload replaced by its decoded value while the history becomes JSON.
_MARK = "baton-decoded-payload"


@dataclass
class Readable:
    """A history as JSON, payloads decoded; `undecoded`: how many could not be."""

    history: dict[str, Any]
    undecoded: int


async def readable(history: WorkflowHistory, converter: DataConverter) -> Readable:
    copy = WorkflowHistory(history.workflow_id, [type(e)() for e in history.events])
    for mine, theirs in zip(copy.events, history.events, strict=True):
        mine.CopyFrom(theirs)
    values: list[Any] = []
    undecoded = 0
    for event in copy.events:
        for payload in payloads_in(event):
            value, ok = await _decoded(payload, converter)
            undecoded += not ok
            values.append(value)
            payload.Clear()
            payload.metadata[_MARK] = str(len(values) - 1).encode()
    return Readable(_substituted(copy.to_json_dict(), values), undecoded)


async def _decoded(payload: Payload, converter: DataConverter) -> tuple[Any, bool]:
    """The payload's value, and whether it could be decoded; else how it was recorded."""
    try:
        if converter.payload_codec is not None:
            [payload] = await converter.payload_codec.decode([payload])
        return _value(payload), True
    except Exception:  # a key this client lacks, or an encoding it does not know
        return _as_recorded(payload), False


def _value(payload: Payload) -> Any:
    encoding = payload.metadata.get("encoding", b"").decode(errors="replace")
    if encoding in ("json/plain", "json/protobuf"):
        return json.loads(payload.data)
    if encoding == "binary/null":
        return None
    raise ValueError(f"no readable form for a {encoding!r} payload")


def _as_recorded(payload: Payload) -> dict[str, Any]:
    """A payload as recorded, its metadata as text where it is text."""
    return {"metadata": {key: value.decode(errors="replace")
                         for key, value in payload.metadata.items()},
            "data": base64.b64encode(payload.data).decode()}


def _substituted(node: Any, values: list[Any]) -> Any:
    """`node` with every marked payload replaced by its value."""
    if isinstance(node, dict):
        mark = node.get("metadata", {}).get(_MARK) if len(node) == 1 else None
        if mark is not None:
            return values[int(base64.b64decode(mark))]
        return {key: _substituted(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_substituted(item, values) for item in node]
    return node
