"""A run's feed (baton/runtime/streaming.py) as AG-UI events, the protocol agent front ends speak.

`Translator` reads the run's `StreamEvent`s in order and answers each with the
AG-UI events it stands for, built with the `ag-ui-protocol` package's own models:

| Baton                                   | AG-UI                                           |
|-----------------------------------------|-------------------------------------------------|
| (the start of the feed)                 | RUN_STARTED, STATE_SNAPSHOT                     |
| text_start / text_delta / text_end      | TEXT_MESSAGE_START / CONTENT / END              |
| a contract's JSON (route, structured)   | CUSTOM baton.output (the data, not the text)    |
| attempt_restarted                       | TEXT_MESSAGE_END, CUSTOM baton.attempt_restarted |
| tool_call, then its tool_call step      | TOOL_CALL_START / ARGS / END, TOOL_CALL_RESULT  |
| status, phase, progress, spending       | STATE_DELTA (JSON Patch of the snapshot)        |
| handoff, approval, guardrail trip steps | CUSTOM baton.handoff / approval_requested /     |
|                                         | approval_decided / guardrail_tripped            |
| every step                              | CUSTOM baton.step (what `starter.py watch` shows) |
| finished / failed                       | RUN_FINISHED (the typed result) / RUN_ERROR     |

A retried model call's void text is closed and announced (baton.attempt_restarted
names the message to drop); its next attempt is a new message, `<id>~<attempt>`.
Each AG-UI event gets an id `<position>.<n>`: position 0 is the feed's start, p the
feed event at offset p-1, n its n-th AG-UI event. The translation is a pure function
of the feed read from its start, so every process gives every event the same id:
a client resumes on any replica with `Last-Event-ID`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ag_ui.core import (
    BaseEvent,
    CustomEvent,
    RunErrorEvent,
    RunFinishedEvent,
    RunFinishedSuccessOutcome,
    RunStartedEvent,
    StateDeltaEvent,
    StateSnapshotEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from ag_ui.core.events import EventType

from baton.core.events import RunEvent
from baton.core.usage import Usage
from baton.runtime.streaming import (
    AttemptRestarted,
    Failed,
    Finished,
    StepEvent,
    StreamEvent,
    TextDelta,
    TextEnd,
    TextStart,
    ToolCallRequested,
)

# Names of Baton's CUSTOM events (the console and other clients dispatch on them).
HANDOFF = "baton.handoff"
APPROVAL_REQUESTED = "baton.approval_requested"
APPROVAL_DECIDED = "baton.approval_decided"
GUARDRAIL_TRIPPED = "baton.guardrail_tripped"
ATTEMPT_RESTARTED = "baton.attempt_restarted"
OUTPUT = "baton.output"
STEP = "baton.step"
RESULT = "baton.result"

EVENT_ID = re.compile(r"^(\d{1,12})\.(\d{1,6})$")
_WAITING = re.compile(r"^waiting: (?P<request>\S+) (?P<subject>[^(]+)\((?P<args>.*)\): "
                      r"(?P<why>.*)$", re.S)
_DECIDED = re.compile(r"^(?P<request>\S+) (?P<verdict>approved|rejected)", re.S)
_HANDOFF = re.compile(r"^-> (?P<to>[^:]+): ?(?P<why>.*)$", re.S)


def event_id(position: int, index: int) -> str:
    return f"{position}.{index}"


def parse_event_id(text: str) -> tuple[int, int]:
    """(position, n) of an id this module gave; ValueError saying what one looks like."""
    match = EVENT_ID.match(text.strip())
    if match is None:
        raise ValueError(f"Last-Event-ID {text!r} is not an event id of this stream; ids "
                         "look like 12.0 (the id of the last event received)")
    return int(match[1]), int(match[2])


@dataclass
class _Text:
    """One model call's message as AG-UI sees it."""

    agui_id: str
    agent: str
    contract: str | None
    open: bool = True
    text: str = ""


@dataclass
class _ToolCall:
    agui_id: str
    name: str
    agent: str
    workflow_id: str


@dataclass
class Translator:
    """Stateful: feed events must be given in order, from the feed's start."""

    thread_id: str
    run_id: str
    state: dict[str, Any] = field(default_factory=dict)
    _texts: dict[str, _Text] = field(default_factory=dict)
    _attempts: dict[str, int] = field(default_factory=dict)
    _open_calls: list[_ToolCall] = field(default_factory=list)
    _answered: bool = False

    def start(self) -> list[BaseEvent]:
        """The events before the feed's first: position 0."""
        self.state = {"status": "running", "phase": "", "progress": None,
                      "usage": _usage(Usage()),
                      "context": {"workflow_id": self.run_id, "agent": "", "path": ""}}
        return [RunStartedEvent(thread_id=self.thread_id, run_id=self.run_id),
                StateSnapshotEvent(snapshot=self.state)]

    def translate(self, event: StreamEvent) -> list[BaseEvent]:
        """The AG-UI events one feed event stands for (maybe none)."""
        if isinstance(event, TextStart):
            return self._text_start(event)
        if isinstance(event, TextDelta):
            return self._text_delta(event)
        if isinstance(event, TextEnd):
            return self._text_end(event)
        if isinstance(event, AttemptRestarted):
            return self._restarted(event)
        if isinstance(event, ToolCallRequested):
            return self._tool_requested(event)
        if isinstance(event, StepEvent):
            return self._step(event)
        if isinstance(event, Finished):
            return self._finished(event)
        return self._failed(event)

    # --- text -------------------------------------------------------------------

    def _text_start(self, event: TextStart) -> list[BaseEvent]:
        restarts = self._attempts.get(event.message_id, 0)
        agui_id = event.message_id if restarts == 0 else f"{event.message_id}~{restarts + 1}"
        out = self._close(event.message_id)
        self._texts[event.message_id] = _Text(agui_id, event.agent, event.contract)
        if event.contract is None:
            out.append(TextMessageStartEvent(message_id=agui_id, role="assistant",
                                             name=event.agent))
        return out

    def _text_delta(self, event: TextDelta) -> list[BaseEvent]:
        text = self._texts.get(event.message_id)
        if text is None or not text.open or not event.delta:
            return []
        text.text += event.delta
        if text.contract is not None:
            return []  # JSON for a contract: shown as data when complete
        return [TextMessageContentEvent(message_id=text.agui_id, delta=event.delta)]

    def _text_end(self, event: TextEnd) -> list[BaseEvent]:
        text = self._texts.get(event.message_id)
        if text is None or not text.open:
            return []
        out = self._close(event.message_id)
        if text.contract is not None:
            out.append(CustomEvent(name=OUTPUT, value={
                "agent": text.agent, "contract": text.contract, "path": event.path,
                "message_id": text.agui_id, "output": _json_or_text(text.text)}))
        else:
            self._answered = True
        return out

    def _close(self, message_id: str) -> list[BaseEvent]:
        text = self._texts.get(message_id)
        if text is None or not text.open:
            return []
        text.open = False
        return [] if text.contract is not None else [
            TextMessageEndEvent(message_id=text.agui_id)]

    def _restarted(self, event: AttemptRestarted) -> list[BaseEvent]:
        voided = self._texts.get(event.message_id)
        out = self._close(event.message_id)
        self._attempts[event.message_id] = self._attempts.get(event.message_id, 0) + 1
        out.append(CustomEvent(name=ATTEMPT_RESTARTED, value={
            "message_id": voided.agui_id if voided else event.message_id,
            "agent": event.agent, "attempt": event.attempt, "reason": event.reason,
            "path": event.path}))
        return out

    # --- tools ------------------------------------------------------------------

    def _tool_requested(self, event: ToolCallRequested) -> list[BaseEvent]:
        call = _ToolCall(f"{event.workflow_id}:{event.call_id}", event.name, event.agent,
                         event.workflow_id)
        self._open_calls.append(call)
        parent = self._texts.get(event.message_id)
        return [ToolCallStartEvent(tool_call_id=call.agui_id, tool_call_name=event.name,
                                   parent_message_id=parent.agui_id if parent else None),
                ToolCallArgsEvent(tool_call_id=call.agui_id,
                                  delta=json.dumps(event.arguments, default=str)),
                ToolCallEndEvent(tool_call_id=call.agui_id)]

    def _tool_done(self, event: StepEvent) -> list[BaseEvent]:
        """A tool's result (the tool_call step); the call itself when nobody announced
        it (a run without text streaming)."""
        step = event.event
        name, _, rest = step.detail.partition("(")
        result = step.detail.split(") -> ", 1)[1] if ") -> " in step.detail else step.detail
        call = next((c for c in self._open_calls if c.name == name and c.agent == step.agent
                     and c.workflow_id == event.workflow_id), None)
        out: list[BaseEvent] = []
        if call is None:
            call = _ToolCall(f"{event.workflow_id}:{event.offset}", name, step.agent,
                             event.workflow_id)
            arguments = rest.rsplit(") -> ", 1)[0] if ") -> " in rest else rest.rstrip(")")
            out += [ToolCallStartEvent(tool_call_id=call.agui_id, tool_call_name=name),
                    ToolCallArgsEvent(tool_call_id=call.agui_id, delta=arguments),
                    ToolCallEndEvent(tool_call_id=call.agui_id)]
        else:
            self._open_calls.remove(call)
        out.append(ToolCallResultEvent(message_id=f"{call.agui_id}:result",
                                       tool_call_id=call.agui_id, role="tool",
                                       content=result))
        return out

    def _transferred(self, event: StepEvent, target: str) -> list[BaseEvent]:
        """A router's handoff tool call (transfer_to_<target>) answered by the handoff."""
        call = next((c for c in self._open_calls if c.agent == event.event.agent
                     and c.workflow_id == event.workflow_id
                     and c.name.endswith(f"_{target}")), None)
        if call is None:
            return []
        self._open_calls.remove(call)
        return [ToolCallResultEvent(message_id=f"{call.agui_id}:result",
                                    tool_call_id=call.agui_id, role="tool",
                                    content=f"handed off to {target}")]

    # --- steps, state and custom events ------------------------------------------

    def _step(self, event: StepEvent) -> list[BaseEvent]:
        step = event.event
        top = event.path == "" and event.workflow_id in ("", self.run_id)
        patch: dict[str, Any] = {}
        if step.kind == "status" and top and step.status:
            patch["status"] = step.status
        if step.kind == "phase" and top:
            patch["phase"] = step.detail
        if step.done is not None and step.total is not None and top:
            patch["progress"] = {"done": step.done, "total": step.total}
        if top and _usage(step.spent) != self.state.get("usage"):
            patch["usage"] = _usage(step.spent)
        context = {"workflow_id": event.workflow_id or self.run_id,
                   "agent": step.agent or self.state["context"]["agent"], "path": event.path}
        if step.kind == "step" and context != self.state["context"]:
            patch["context"] = context
        out: list[BaseEvent] = []
        if patch:
            self.state.update(patch)
            out.append(StateDeltaEvent(delta=[
                {"op": "add", "path": f"/{key}", "value": value}
                for key, value in patch.items()]))
        out.append(CustomEvent(name=STEP, value=_step_value(event)))
        if step.kind == "step":
            out += self._semantic(event)
        elif step.kind == "result" and event.path:
            out.append(CustomEvent(name=RESULT, value={
                "path": event.path, "workflow_id": event.workflow_id,
                "status": step.status, "answer": step.detail}))
        return out

    def _semantic(self, event: StepEvent) -> list[BaseEvent]:
        step = event.event
        where = {"agent": step.agent, "path": event.path, "workflow_id": event.workflow_id}
        if step.step == "tool_call":
            return self._tool_done(event)
        if step.step == "handoff" and (match := _HANDOFF.match(step.detail)):
            return [*self._transferred(event, match["to"].strip()),
                    CustomEvent(name=HANDOFF, value={
                        **where, "to": match["to"].strip(), "reason": match["why"]})]
        if step.step == "approval" and (match := _WAITING.match(step.detail)):
            return [CustomEvent(name=APPROVAL_REQUESTED, value={
                **where, "request_id": match["request"], "subject": match["subject"],
                "arguments": _json_or_text(match["args"]), "why": match["why"]})]
        if step.step == "approval" and (match := _DECIDED.match(step.detail)):
            return [CustomEvent(name=APPROVAL_DECIDED, value={
                **where, "request_id": match["request"], "approved": step.ok,
                "detail": step.detail})]
        if step.step == "guardrail" and not step.ok:
            return [CustomEvent(name=GUARDRAIL_TRIPPED, value={**where,
                                                                "detail": step.detail})]
        return []

    # --- the end ----------------------------------------------------------------

    def _finished(self, event: Finished) -> list[BaseEvent]:
        out = self._close_all()
        if not self._answered and event.answer:
            # A run started without text streaming: its answer as one message.
            message_id = f"{self.run_id}:answer"
            out += [TextMessageStartEvent(message_id=message_id, role="assistant"),
                    TextMessageContentEvent(message_id=message_id, delta=event.answer),
                    TextMessageEndEvent(message_id=message_id)]
        if self.state.get("status") != event.status:
            self.state["status"] = event.status
            out.append(StateDeltaEvent(delta=[{"op": "add", "path": "/status",
                                               "value": event.status}]))
        out.append(RunFinishedEvent(thread_id=self.thread_id, run_id=self.run_id,
                                    result=event.result,
                                    outcome=RunFinishedSuccessOutcome()))
        return out

    def _failed(self, event: Failed) -> list[BaseEvent]:
        out = self._close_all()
        self.state["status"] = event.status
        out += [StateDeltaEvent(delta=[{"op": "add", "path": "/status",
                                        "value": event.status}]),
                RunErrorEvent(message=event.error, code=event.error_type or event.status)]
        return out

    def _close_all(self) -> list[BaseEvent]:
        out: list[BaseEvent] = []
        for message_id in list(self._texts):
            out += self._close(message_id)
        return out


def is_terminal(event: BaseEvent) -> bool:
    return event.type in (EventType.RUN_FINISHED, EventType.RUN_ERROR)


def _usage(usage: Usage) -> dict[str, Any]:
    return {"calls": usage.calls, "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens, "total_tokens": usage.total_tokens,
            "cost_usd": usage.cost_usd}


def _step_value(event: StepEvent) -> dict[str, Any]:
    step: RunEvent = event.event
    return {"workflow_id": event.workflow_id, **step.model_dump(mode="json")}


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
