"""Token streaming: a run's text as the models write it, with its steps, in one feed.

    async for event in baton.stream(run_id):          # or a RunHandle / WorkflowHandle
        if event.kind == "text_delta":
            print(event.delta, end="")

The contract (stable; the HTTP front and the console are built on it):

* `stream(run_id_or_handle, *, client=None, after=None)` yields `StreamEvent`s of a
  run: a top-level run's workflow id (a pattern, a flow), or a session's workflow id
  (`baton.core.session_io.session_workflow_id(session_id)`). Nested runs (fan-out
  branches, teams run by teams, a session's turns `<session>/turn-N`) publish into
  their top-level run's feed, each event naming its `workflow_id` and `path` (""
  for the top-level run). Given a nested run's own id, `stream` yields that run's
  own steps and its end, no text.
* Every event has `offset`, an int that only grows within a run's feed.
  `after=event.offset` resumes right after that event: nothing lost, nothing
  repeated, from any process (the feed is kept by the run's workflow, not by the
  subscriber). `after=None` starts at the beginning. The iterator ends after one
  `finished` or `failed` event, whose offset is the feed's end; `after=` that
  offset yields nothing more. `after` beyond the feed's end raises `OffsetNotFound`;
  an id no run has raises `RunNotFound` (both ValueErrors, nothing subscribed).
  A session keeps the latest 256 KB of its feed when it continues as new (its
  offsets go on); `after=` an offset older than that resumes at the oldest kept.
* `kind` says what happened (see each model below):
  - `text_start`, `text_delta`*, `text_end`: one model call's text (one `message_id`
    per call, the same across its retries; `text_end` carries the call's usage).
    `contract` is set when the call must answer with that contract's JSON (a
    structured output, a guardrail's verdict): the text is then JSON, worth showing
    as data or not at all. `tool_call`: the model asked for a tool (`call_id`,
    `name`, `arguments`), before the tool runs; what it returned is a later `step`
    (`event.step == "tool_call"`), a handoff a later `step` too ("handoff").
  - `attempt_restarted`: the text of `message_id` so far is void (its attempt failed:
    a retry, a fallback model or the agent's failure follows). Drop it; if the call
    is retried, its text starts again with a new `text_start` of the same id. It
    may be announced more than once; dropping is idempotent. The text of a message
    is the concatenation of its deltas after its last `text_start` (`text_of`).
  - `step`: a `baton.core.events.RunEvent` of the run or a nested run, exactly what
    `starter.py watch` shows: `event.kind` is "step" (`event.step`: model_call,
    tool_call, handoff, approval (waiting/decided), guardrail, error, fallback...),
    "phase", "status" (running, waiting_approval, then the final one), "progress"
    (branches done/total) or "result" (a run, nested run or session turn answered:
    `event.detail` is its answer); `event.spent` is that run's usage so far.
  - `finished` (the run's typed result as JSON, its status and answer; a session's
    SessionSummary when it ends) or `failed` (error message and type; also for a
    terminated, cancelled or timed-out run).
* Only runs started with `RunOptions(stream=True)` (`starter.py run --stream`,
  `baton.start(..., stream=True)`, a session started with those options) carry text,
  `tool_call` events and their nested runs' steps. Any run's feed carries its own
  steps (the workflow publishes them itself, at no cost in history).
* One subscription per run and process is enough: fan it out to many readers
  yourself. Each subscriber long-polls the run's workflow (an Update per batch of
  events, written to its history).

How text travels: the model activity reads the provider's stream (OpenAI
`stream=True`, Anthropic's message stream, the offline model in word-sized deltas
paced by its configured latency) and publishes to the top-level run's Workflow
Stream (`temporalio.contrib.workflow_streams`): the first delta at once, then in
batches 0.2 s apart, growing to 1 s apart (`BATCH_INTERVAL_S`...), so history grows
by one signal per batch, never per token (tests/test_streaming.py measures a
500-token answer). A nested run forwards its events to the top-level run in one
signal per workflow activation. Stream payloads are Temporal payloads: the worker's
and client's codec (baton/runtime/codec.py) encrypts them like every other payload. The
feed's target is the run's own top-level workflow as the server records it
(`workflow.info().root`): a run's input may turn streaming on, never point it
elsewhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from baton.core.events import EVENTS_TOPIC, RunEvent
from baton.core.stream_events import (
    BATCH_INTERVAL_GROWTH as BATCH_INTERVAL_GROWTH,
)
from baton.core.stream_events import (
    BATCH_INTERVAL_S as BATCH_INTERVAL_S,
)
from baton.core.stream_events import (
    MAX_BATCH_INTERVAL_S as MAX_BATCH_INTERVAL_S,
)
from baton.core.stream_events import (
    POLL_COOLDOWN as POLL_COOLDOWN,
)
from baton.core.stream_events import (
    STREAM_EVENT as STREAM_EVENT,
)
from baton.core.stream_events import (
    STREAM_TOPIC as STREAM_TOPIC,
)
from baton.core.stream_events import (  # re-exported: the public names of a stream
    AttemptRestarted as AttemptRestarted,
)
from baton.core.stream_events import (
    Failed as Failed,
)
from baton.core.stream_events import (
    Finished as Finished,
)
from baton.core.stream_events import (
    StepEvent as StepEvent,
)
from baton.core.stream_events import (
    StreamEvent as StreamEvent,
)
from baton.core.stream_events import (
    TextDelta as TextDelta,
)
from baton.core.stream_events import (
    TextEnd as TextEnd,
)
from baton.core.stream_events import (
    TextStart as TextStart,
)
from baton.core.stream_events import (
    ToolCallRequested as ToolCallRequested,
)
from baton.runtime.temporal import connect


class RunNotFound(ValueError):
    """No workflow has the id given to `stream`."""


class OffsetNotFound(ValueError):
    """`after` names an offset the run's feed has not reached."""


class _HasHandle(Protocol):
    @property
    def handle(self) -> WorkflowHandle[Any, Any]: ...


async def stream(run_id_or_handle: str | WorkflowHandle[Any, Any] | _HasHandle, *,
                 client: Client | None = None,
                 after: int | None = None) -> AsyncIterator[StreamEvent]:
    """The run's events from just after offset `after` (None: from the start) until it
    ends; see the module docstring for the contract."""
    handle = await _handle_of(run_id_or_handle, client)
    if after is not None and after < 0:
        raise OffsetNotFound(f"after={after}: offsets start at 0")
    feed = WorkflowStreamClient.create(handle._client, handle.id)
    status = await _status(handle)
    end = await feed.get_offset()
    running = status == WorkflowExecutionStatus.RUNNING
    if after is not None and (after >= end if running else after > end):
        raise OffsetNotFound(
            f"run {handle.id!r} has no event at offset {after}: its feed "
            f"{'has reached' if running else 'ended at'} {end}")
    start = 0 if after is None else after + 1
    last = start - 1
    async for item in feed.subscribe([EVENTS_TOPIC, STREAM_TOPIC], start,
                                     poll_cooldown=POLL_COOLDOWN):
        last = item.offset
        yield _decoded(item.topic, item.data, item.offset, handle.id)
    end = max(await feed.get_offset(), last + 1)
    if after is None or after < end:
        yield await _ending(handle, end)


def decode(topic: str, data: Any, offset: int, workflow_id: str) -> StreamEvent:
    """One item of a run's Workflow Stream as a StreamEvent (also for readers that
    subscribe with `WorkflowStreamClient` themselves)."""
    return _decoded(topic, data, offset, workflow_id)


def _decoded(topic: str, data: Any, offset: int, workflow_id: str) -> StreamEvent:
    if topic == EVENTS_TOPIC:
        event = RunEvent.model_validate(data)
        return StepEvent(offset=offset, workflow_id=workflow_id, path=event.path, event=event)
    return STREAM_EVENT.validate_python(data).model_copy(update={"offset": offset})


async def _handle_of(target: str | WorkflowHandle[Any, Any] | _HasHandle,
                     client: Client | None) -> WorkflowHandle[Any, Any]:
    if isinstance(target, str):
        if client is None:
            client = await connect()  # a client only when none is given
        return client.get_workflow_handle(target)
    handle = target if isinstance(target, WorkflowHandle) else target.handle
    # The handle's run id is its first run's: a session continues as new.
    return (client or handle._client).get_workflow_handle(handle.id)


async def _status(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionStatus | None:
    try:
        return (await handle.describe()).status
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise RunNotFound(f"no run with workflow id {handle.id!r}") from None
        raise


_ENDINGS = {
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.CANCELED: "canceled",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
}


async def _ending(handle: WorkflowHandle[Any, Any], end: int) -> StreamEvent:
    """`finished` or `failed`, from the run's own result."""
    try:
        result = await handle.result()
    except WorkflowFailureError as err:
        cause = err.cause
        while cause.__cause__ is not None and not isinstance(cause, ApplicationError):
            cause = cause.__cause__
        status = _ENDINGS.get((await handle.describe()).status or
                              WorkflowExecutionStatus.FAILED, "failed")
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        return Failed(offset=end, workflow_id=handle.id, status=status, error=message,
                      error_type=cause.type if isinstance(cause, ApplicationError) else None)
    value = result if isinstance(result, dict) else {"value": result}
    status = str(value.get("status") or "ok")
    answer = str(value.get("answer") or value.get("reason") or "")
    return Finished(offset=end, workflow_id=handle.id, status=status, answer=answer,
                    result=value)


async def text_of(events: AsyncIterator[StreamEvent]) -> dict[str, str]:
    """Each message's final text (restarted attempts dropped), by message id: the
    rule every subscriber applies, for tests and simple readers."""
    texts: dict[str, str] = {}
    async for event in events:
        if event.kind in ("text_start", "attempt_restarted"):
            texts[event.message_id] = ""
        elif event.kind == "text_delta":
            texts[event.message_id] = texts.get(event.message_id, "") + event.delta
    return texts


__all__ = ["STREAM_EVENT", "AttemptRestarted", "Failed", "Finished", "OffsetNotFound",
           "RunNotFound", "StepEvent", "StreamEvent", "TextDelta", "TextEnd", "TextStart",
           "ToolCallRequested", "decode", "stream", "text_of"]
