"""The events of a run's stream: what `baton.stream` yields and what workflows and
activities publish (text as it is written, tool calls, restarted attempts, steps,
the end). Pure data, safe in the workflow sandbox; reading a stream is
baton/runtime/streaming.py.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from baton.core.events import RunEvent
from baton.core.usage import Usage

# The run's Workflow Stream topic for text and forwarded events (EVENTS_TOPIC holds
# the top-level workflow's own RunEvents).
STREAM_TOPIC = "stream"
# A message's first delta is sent at once; what is written after it goes in batches,
# the first BATCH_INTERVAL_S later, each next one GROWTH times later, up to
# MAX_BATCH_INTERVAL_S: the first words come quickly, and a long answer costs about
# one batch (a signal, a few history events) per second, whatever its token rate.
BATCH_INTERVAL_S = 0.2
BATCH_INTERVAL_GROWTH = 1.5
MAX_BATCH_INTERVAL_S = 1.0
POLL_COOLDOWN = timedelta(milliseconds=20)


class _Event(BaseModel):
    # Position in the run's feed; set when read (0 in what the workflow stores).
    offset: int = 0
    # The workflow it happened in: the top-level run's id, or a nested run's.
    workflow_id: str = ""
    # Where in the run's tree ("" for the top-level run, "research_panel/analyst").
    path: str = ""


class TextStart(_Event):
    """A model call begins writing (again, on a retry: after `attempt_restarted`)."""

    kind: Literal["text_start"] = "text_start"
    message_id: str
    agent: str
    model: str
    attempt: int = 1
    # The contract the answer must follow: the text is that contract's JSON.
    contract: str | None = None


class TextDelta(_Event):
    kind: Literal["text_delta"] = "text_delta"
    message_id: str
    agent: str
    delta: str


class TextEnd(_Event):
    """The call's text is complete (its usage included)."""

    kind: Literal["text_end"] = "text_end"
    message_id: str
    agent: str
    finish_reason: str = "stop"
    usage: Usage = Field(default_factory=Usage)


class ToolCallRequested(_Event):
    """The model asked for a tool; the tool's result follows as a `step` (tool_call)."""

    kind: Literal["tool_call"] = "tool_call"
    message_id: str
    agent: str
    call_id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class AttemptRestarted(_Event):
    """Drop the text of `message_id` received so far: its attempt failed."""

    kind: Literal["attempt_restarted"] = "attempt_restarted"
    message_id: str
    agent: str
    # The attempt that starts over (Temporal's count), or 0 when not known yet.
    attempt: int = 0
    reason: str = ""


class StepEvent(_Event):
    """Something the run did (what `starter.py watch` shows)."""

    kind: Literal["step"] = "step"
    event: RunEvent


class Finished(_Event):
    """The run ended with a result (any status: ok, degraded, blocked...)."""

    kind: Literal["finished"] = "finished"
    status: str
    answer: str = ""
    # The run's typed result as JSON (RunResult and its pattern's fields, FlowResult,
    # or a session's SessionSummary).
    result: dict[str, Any] = Field(default_factory=dict)


class Failed(_Event):
    """The run ended without a result."""

    kind: Literal["failed"] = "failed"
    # failed, terminated, canceled or timed_out
    status: str = "failed"
    error: str
    error_type: str | None = None


StreamEvent = Annotated[
    TextStart | TextDelta | TextEnd | ToolCallRequested | AttemptRestarted | StepEvent
    | Finished | Failed,
    Field(discriminator="kind")]
STREAM_EVENT: TypeAdapter[StreamEvent] = TypeAdapter(StreamEvent)
