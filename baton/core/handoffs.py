"""Handoffs as data: the transfer tools agents are offered, and the functions runs name.

An agent that declares `handoffs` is offered one tool per target,
`transfer_to_<target>`, described by the target's own description (or the one its
`baton.handoff(...)` gives) and taking an optional `reason`. When the model calls
one, the agent's turn ends and the conversation goes to that target; when it
answers in text, it answered itself (workflows/handoffs.py runs the chain).

What a target sees (`input_filter`) and a hook on the way (`on_handoff`) are code,
so they never travel: each is registered in this process under a name
("router/billing" for `baton.handoff(...)` in the agent `router`, or Baton's own
`baton.nest_history`), a catalogue and a run's input carry only that name, and a
worker that lacks it fails the run with `UnknownHook`. They run inside the
workflow, so they must be deterministic: no I/O, clock or random numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from baton.core.model_io import Message, ToolSpec
from baton.core.text import shorten

TRANSFER_PREFIX = "transfer_to_"
# A provider's tool names: letters, digits, '_' and '-', at most 64 characters.
TOOL_NAME_CHARS = 64
# How many transfers one run of a chain may make before it stops (cycles are allowed).
DEFAULT_MAX_HANDOFFS = 5
MAX_HANDOFFS_LIMIT = 100
# Each earlier turn keeps at most this much text inside a nested transcript.
NESTED_TURN_CHARS = 600

# What a target is given (the messages its caller would give it -> what it sees), and
# a hook told of the handoff (the run's context, the reason -> a changed context or None).
InputFilter = Callable[[list[Message]], list[Message]]
HandoffHook = Callable[[Any, str], Any]
INPUT_FILTERS: dict[str, InputFilter] = {}
HANDOFF_HOOKS: dict[str, HandoffHook] = {}


class HandoffSpec(BaseModel):
    """How one agent hands the conversation to one target (all optional)."""

    model_config = ConfigDict(extra="forbid")

    # What the transfer tool tells the model; by default the target's own description.
    description: str | None = Field(default=None, max_length=2000)
    # Names of functions registered on the worker (INPUT_FILTERS, HANDOFF_HOOKS).
    input_filter: str | None = Field(default=None, min_length=1, max_length=200)
    on_handoff: str | None = Field(default=None, min_length=1, max_length=200)


def transfer_tool_name(target: str) -> str:
    """The tool that hands the conversation to `target`, in the characters providers accept."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", target)
    return f"{TRANSFER_PREFIX}{safe}"[:TOOL_NAME_CHARS]


def transfer_spec(name: str, target: str, description: str) -> ToolSpec:
    """The transfer tool `name` as the model is offered it."""
    return ToolSpec(
        name=name,
        description=description.strip() or f"Hand the conversation to {target}.",
        parameters={"type": "object", "additionalProperties": False, "properties": {
            "reason": {"type": "string",
                       "description": "Why this target should take over, in one sentence."}}})


def is_transfer(tool_name: str) -> bool:
    return tool_name.startswith(TRANSFER_PREFIX)


def nest_history(messages: list[Message]) -> list[Message]:
    """Earlier turns folded into one transcript message, followed by the latest request
    (`Triage(nest_handoff_history=True)`, or `input_filter="baton.nest_history"`)."""
    if len(messages) <= 1:
        return list(messages)
    lines = []
    for message in messages[:-1]:
        who = message.agent or message.role
        lines.append(f"{who}: {shorten(message.content, NESTED_TURN_CHARS)}")
    transcript = "\n".join(lines)
    return [Message(role="user", content=(
        f"<conversation_history>\n{transcript}\n</conversation_history>\n\n"
        f"{messages[-1].content}"))]


NEST_HISTORY = "baton.nest_history"
INPUT_FILTERS[NEST_HISTORY] = nest_history
