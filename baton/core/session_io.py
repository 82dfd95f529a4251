"""Conversations that last: the pure data of a session, and how its memory is compressed.

A session is one long-lived `SessionWorkflow` per session id (workflows/session.py).
Each user turn is an Update carrying a `TurnRequest` and answered by a `TurnAnswer`.
What the session remembers between turns is a `SessionMemory`: the last few turns
verbatim and a bounded transcript summary of the older ones. `fold` and `context`
are pure functions of that memory, so the workflow (and a replay of it) always
builds the same model input, and the memory is all that continue-as-new carries
over: a session's history grows with the number of turns, not with their square.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from temporalio.contrib.workflow_streams import WorkflowStreamState

from baton.core.model_io import Message
from baton.core.runs import RunOptions, Status
from baton.core.specs import Catalogue
from baton.core.text import shorten
from baton.core.usage import Usage

SESSION_WORKFLOW = "SessionWorkflow"
# Session workflows get their own id space, so a session id never names a run.
SESSION_PREFIX = "session-"
SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,119}$")
# One user message; the recent turns and the summary are bounded separately, so a
# turn's whole context stays well under RunInput's MAX_PROMPT_BYTES.
MAX_MESSAGE_CHARS = 64 * 1024
HISTORY_OPEN, HISTORY_CLOSE = "<conversation_history>", "</conversation_history>"
# ApplicationError types of a turn refused by the session (not a failed answer).
SESSION_ENDED = "SessionEnded"
SESSION_TOO_LONG = "SessionTooLong"
DAY_S = 86_400.0


def session_workflow_id(session_id: str) -> str:
    return session_id if session_id.startswith(SESSION_PREFIX) else SESSION_PREFIX + session_id


def check_session_id(session_id: str) -> str:
    """The id, or ValueError saying what an id may contain."""
    if not SESSION_ID.match(session_id):
        raise ValueError(f"session id {session_id!r} must be 1-120 letters, digits, '.', "
                         "'_', ':' or '-', starting with a letter or digit")
    return session_id


class SessionLimits(BaseModel):
    """How a session forgets and when it starts a fresh history (recorded in its input)."""

    # The session ends itself after this long without a turn.
    idle_timeout_s: float = Field(default=7 * DAY_S, gt=0, le=365 * DAY_S)
    # Turns the specialist sees verbatim; older ones reach it only through the summary.
    keep_recent_turns: int = Field(default=3, ge=1, le=100)
    # Characters of recent turns kept verbatim at most (long answers fold sooner).
    keep_recent_chars: int = Field(default=96_000, ge=1_000, le=160_000)
    # False keeps every turn verbatim: no information lost, context and history
    # growing with every turn (the comparison the session benchmark makes).
    compress: bool = True
    # Each side of a folded turn keeps at most this many characters in the summary.
    turn_chars: int = Field(default=160, ge=20, le=4_000)
    # Once the summary is over its bound, older folded turns are cut to this first.
    old_turn_chars: int = Field(default=60, ge=10, le=4_000)
    # The summary's size bound: past it, the oldest folded turns after the opening
    # request are cut short, then dropped (the count of dropped turns is kept).
    summary_chars: int = Field(default=3_000, ge=200, le=64_000)
    # Continue-as-new once this run's history passes either bound, or after this many
    # turns (None: no turn bound), or when the server suggests it.
    continue_after_events: int = Field(default=10_000, ge=50, le=40_000)
    continue_after_bytes: int = Field(default=8 * 1024 * 1024, ge=10_000,
                                      le=40 * 1024 * 1024)
    continue_after_turns: int | None = Field(default=None, ge=1)
    # Agent members (and triage specialists that are agents) answer inside the
    # session workflow instead of in a child workflow per turn.
    inline_agents: bool = False


class Turn(BaseModel):
    """One answered turn, as the session remembers it."""

    number: int
    user: str
    answer: str
    handled_by: str


class SessionMemory(BaseModel):
    """Everything a session carries from one turn, and one run of its chain, to the next."""

    turns: int = 0  # answered so far
    recent: list[Turn] = Field(default_factory=list)
    # Transcript lines of folded turns ("user: ...", "<agent>: ..."), oldest first.
    summary: list[str] = Field(default_factory=list)
    folded_turns: int = 0
    # Folded turns whose lines were later dropped to keep the summary bounded.
    dropped_turns: int = 0
    # The triage specialist the conversation is with (sticky until the router moves it).
    specialist: str | None = None
    usage: dict[str, Usage] = Field(default_factory=dict)
    # Which run of the continue-as-new chain this is (1 for the first).
    run: int = 1
    last_active: datetime | None = None


class SessionInput(BaseModel):
    """Start (or, through continue-as-new, carry on) the session `session_id` on `member`."""

    session_id: str
    member: str
    catalogue: Catalogue
    options: RunOptions = Field(default_factory=RunOptions)
    limits: SessionLimits = Field(default_factory=SessionLimits)
    memory: SessionMemory = Field(default_factory=SessionMemory)
    # The end of the session's feed (baton/runtime/streaming.py), carried by continue-as-new:
    # its offsets go on, and its latest events stay readable.
    stream: WorkflowStreamState | None = Field(default=None,
                                               exclude_if=lambda state: state is None)


class TurnRequest(BaseModel):
    """One user turn (the `turn` update)."""

    # Blank messages are refused by the update's validator, with a plain message.
    message: str = Field(max_length=MAX_MESSAGE_CHARS)
    # The team or agent the caller believes the session runs; a mismatch is refused.
    member: str | None = None


class TurnAnswer(BaseModel):
    """What one turn returned."""

    session_id: str
    turn: int
    answer: str
    handled_by: str
    status: Status = "ok"
    # Why the router sent (or kept) the conversation where it did; "" outside triage.
    route_reason: str = ""
    output: dict[str, object] | None = None
    # This turn's usage per agent.
    usage: dict[str, Usage] = Field(default_factory=dict)
    reasons: list[str] = Field(default_factory=list)
    # The workflow the member answered in: the turn's child, or the session itself.
    workflow_id: str = ""

    @property
    def total_usage(self) -> Usage:
        return Usage.sum(self.usage.values())


EndedBy = Literal["user", "idle"]


class EndRequest(BaseModel):
    """End a session (the `end` update)."""

    reason: str = Field(default="", max_length=4_000)


class SessionSummary(BaseModel):
    """What an ended session returns (and `end` answers)."""

    session_id: str
    member: str
    turns: int
    ended_by: EndedBy
    reason: str = ""
    usage: dict[str, Usage] = Field(default_factory=dict)
    runs: int = 1

    @property
    def total_usage(self) -> Usage:
        return Usage.sum(self.usage.values())


class SessionState(BaseModel):
    """A session's live state (the `state` query)."""

    session_id: str
    member: str
    status: Literal["waiting", "answering", "ended"]
    turns: int
    specialist: str | None
    summary: list[str]
    folded_turns: int
    dropped_turns: int
    recent: list[Turn]
    usage: dict[str, Usage]
    run: int
    history_events: int
    history_bytes: int
    idle_timeout_s: float
    last_active: datetime | None = None


def _summary_chars(lines: list[str]) -> int:
    return sum(len(line) + 1 for line in lines)


def _text(line: str) -> str:
    return line.partition(": ")[2]


def _cut(line: str, chars: int) -> str:
    who, _, text = line.partition(": ")
    return f"{who}: {shorten(text, chars)}"


def fold(memory: SessionMemory, limits: SessionLimits) -> SessionMemory:
    """Move turns beyond the verbatim window into the bounded summary.

    Each folded turn becomes two transcript lines cut to `turn_chars`; past
    `summary_chars` the oldest folded turns are dropped, except the opening request,
    which frames most conversations.
    """
    if not limits.compress:
        return memory
    recent = list(memory.recent)
    summary = list(memory.summary)
    folded, dropped = memory.folded_turns, memory.dropped_turns

    def too_long() -> bool:
        return (len(recent) > limits.keep_recent_turns
                or (len(recent) > 1 and sum(len(t.user) + len(t.answer) for t in recent)
                    > limits.keep_recent_chars))

    while too_long():
        turn = recent.pop(0)
        summary += [f"user: {shorten(turn.user, limits.turn_chars)}",
                    f"{turn.handled_by}: {shorten(turn.answer, limits.turn_chars)}"]
        folded += 1
    # Over the bound, the oldest turns lose detail first (cut to `old_turn_chars`),
    # and only then whole turns go. Lines come in pairs; the first pair (the opening
    # request) keeps its length and is never dropped.
    while _summary_chars(summary) > limits.summary_chars and len(summary) > 4:
        long = next((i for i in range(2, len(summary), 2)
                     if max(len(_text(line)) for line in summary[i:i + 2])
                     > limits.old_turn_chars), None)
        if long is None:
            del summary[2:4]
            dropped += 1
        else:
            summary[long:long + 2] = [_cut(line, limits.old_turn_chars)
                                      for line in summary[long:long + 2]]
    return memory.model_copy(update={"recent": recent, "summary": summary,
                                     "folded_turns": folded, "dropped_turns": dropped})


def summary_message(memory: SessionMemory) -> Message | None:
    """The folded turns as one transcript message (the shape `nest_history` uses)."""
    if not memory.summary:
        return None
    lines = list(memory.summary)
    if memory.dropped_turns:
        # Say what is missing rather than let the model assume it saw everything.
        lines.insert(2, f"[{memory.dropped_turns} turns after the first omitted]")
    note = (f"Summary of turns 1-{memory.folded_turns} of this conversation "
            "(each cut short):")
    return Message(role="user", content="\n".join([HISTORY_OPEN, note, *lines, HISTORY_CLOSE]))


def context(memory: SessionMemory, message: str) -> list[Message]:
    """What a turn's member reads: the summary, the recent turns verbatim, the new message."""
    messages: list[Message] = []
    if (summary := summary_message(memory)) is not None:
        messages.append(summary)
    for turn in memory.recent:
        messages += [Message(role="user", content=turn.user),
                     Message(role="assistant", content=turn.answer, agent=turn.handled_by)]
    messages.append(Message(role="user", content=message))
    return messages
