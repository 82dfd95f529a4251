"""Guardrails: checks on what goes into a run or an agent, and on what comes out.

A guardrail is a Python function (`@baton.guardrail`, run as an activity so it may
do I/O) or an agent that answers a `GuardrailVerdict`. Either says whether the
text is allowed and why. Attached to an agent or a team as `input_guardrails`
(checked before the first model call, or alongside it with `parallel`) and
`output_guardrails` (checked before the answer leaves the agent or the run). A
tripped guardrail ends the run (or a nested run) with status `blocked` and the
guardrail's reason; nothing after it runs.

An agent's `tool_output_guardrails` check what each of its function tools returned
before the model reads it: a tool's result is data from outside (a web page, a
record someone else wrote) and may carry instructions aimed at the model. A trip
there withholds that one result by default: the model is told it was withheld, the
run goes on `degraded` (one poisoned page should not end a support conversation),
and the trace records the trip. A guardrail declared with `on_tool_output="halt"`
blocks the run instead.

Built in: `pii` (e-mail addresses, phone and card numbers, API keys and other
secrets, by pattern) and `relevance` (a cheap model judges whether a request is on
the topic the agent's catalogue gives; see `relevance_agent`).
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal, overload

from pydantic import BaseModel, Field

from baton.core.contracts import GuardrailVerdict

GUARDRAIL_ACTIVITY_PREFIX = "guardrail_"
# What a guardrail may be named (it names an activity, and a catalogue's key).
GUARDRAIL_NAME = r"^[A-Za-z0-9_-]{0,64}$"
Where = Literal["input", "output", "tool_output"]
# What a trip on a tool's output does: withhold that result, or block the run.
OnToolOutput = Literal["withhold", "halt"]


class GuardrailDef(BaseModel):
    """A guardrail as a run's catalogue records it."""

    # Filled from the catalogue's key when the catalogue is validated.
    name: str = Field(default="", pattern=GUARDRAIL_NAME)
    kind: Literal["function", "agent"] = "function"
    # For kind "agent": the catalogue agent that judges (its contract is the verdict).
    agent: str | None = None
    # Input guardrails only: run alongside the first agent instead of before it
    # (faster; the first agent's call may then happen even when the input trips).
    parallel: bool = False
    # Tool-output guardrails only: what a trip does (see the module's docstring).
    on_tool_output: OnToolOutput = "withhold"
    timeout_s: float = Field(default=30.0, gt=0, le=3600)
    # What a run this guardrail blocks answers ("" : "Blocked: <why>").
    refusal: str = Field(default="", max_length=2000)


# How a guardrail agent that answers its own model trips, by agent name
# (baton.Agent(..., tripwire=fn)): code, found in the worker's process.
TRIPWIRES: dict[str, Callable[[Any], bool]] = {}


class GuardrailCheck(BaseModel):
    """What a function guardrail's activity receives."""

    guardrail: str
    where: Where
    member: str
    text: str


class Guardrail:
    """A function that judges a text; returns a verdict, a bool (True: allowed), or None
    (allowed)."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None,
                 parallel: bool = False, timeout: float = 30.0,
                 on_tool_output: OnToolOutput = "withhold", refusal: str = "") -> None:
        self.fn = fn
        self.definition = GuardrailDef(name=name or fn.__name__, kind="function",
                                       parallel=parallel, timeout_s=timeout,
                                       on_tool_output=on_tool_output, refusal=refusal)
        self.takes_where = len(inspect.signature(fn).parameters) > 1

    @property
    def name(self) -> str:
        return self.definition.name

    def __repr__(self) -> str:
        return f"<baton.guardrail {self.name}>"

    async def judge(self, text: str, where: Where) -> GuardrailVerdict:
        args: tuple[Any, ...] = (text, where) if self.takes_where else (text,)
        if inspect.iscoroutinefunction(self.fn):
            value = await self.fn(*args)
        else:
            value = await asyncio.to_thread(self.fn, *args)
        if isinstance(value, Awaitable):
            value = await value
        if value is None:
            return GuardrailVerdict(allowed=True)
        if isinstance(value, bool):
            return GuardrailVerdict(allowed=value, reason="" if value else f"{self.name} said no")
        return GuardrailVerdict.model_validate(value)


@overload
def guardrail(fn: Callable[..., Any], /) -> Guardrail: ...


@overload
def guardrail(*, name: str | None = None, parallel: bool = False, timeout: float = 30.0,
              on_tool_output: OnToolOutput = "withhold", refusal: str = "",
              ) -> Callable[[Callable[..., Any]], Guardrail]: ...


def guardrail(fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
              parallel: bool = False, timeout: float = 30.0,
              on_tool_output: OnToolOutput = "withhold", refusal: str = "",
              ) -> Guardrail | Callable[[Callable[..., Any]], Guardrail]:
    """Make `fn(text[, where])` a guardrail: bare `@guardrail` or `@guardrail(parallel=True)`.

    `where` is "input", "output" or "tool_output"; `on_tool_output="halt"` makes a trip
    on a tool's output block the run instead of withholding that output; `refusal` is
    what a run this guardrail blocks answers (default: "Blocked: <why>").
    """
    def make(function: Callable[..., Any]) -> Guardrail:
        return Guardrail(function, name=name, parallel=parallel, timeout=timeout,
                         on_tool_output=on_tool_output, refusal=refusal)

    return make(fn) if fn is not None else make


# Patterns of personal data and secrets; a match trips the `pii` guardrail.
PII_PATTERNS: dict[str, re.Pattern[str]] = {
    "an e-mail address": re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"),
    "a card number": re.compile(r"\b(?:\d[ -]?){13,19}\b"),
    "a phone number": re.compile(r"(?<![\w+])\+?\(?\d[\d ().-]{6,}\d(?!\w)"),
    "an API key": re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}\b|\bAKIA[0-9A-Z]{16}\b"
                             r"|\bgh[pousr]_[A-Za-z0-9]{30,}\b|\bxox[abp]-[A-Za-z0-9-]{10,}\b"),
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}


def _luhn_ok(digits: str) -> bool:
    numbers = [int(d) for d in digits if d.isdigit()]
    checksum = 0
    for index, number in enumerate(reversed(numbers)):
        if index % 2:
            number = number * 2 - 9 if number > 4 else number * 2
        checksum += number
    return len(numbers) >= 13 and checksum % 10 == 0


def _luhn_card(text: str) -> bool:
    return sum(c.isdigit() for c in text) >= 13 and _luhn_ok(text)


def find_pii(text: str) -> list[str]:
    """What kinds of personal data or secrets `text` contains (never the values)."""
    found = []
    for kind, pattern in PII_PATTERNS.items():
        matches = pattern.findall(text)
        if kind == "a card number":
            matches = [m for m in matches if _luhn_ok(m)]
        elif kind == "a phone number":  # 9 to 12 digits: longer ones are cards or ids
            matches = [m for m in matches
                       if 9 <= sum(c.isdigit() for c in m) <= 12 and not _luhn_card(m)]
        if matches:
            found.append(kind)
    return found


@guardrail
def pii(text: str) -> GuardrailVerdict:
    """Trips on personal data or secrets: e-mail, phone, card numbers, API keys."""
    found = find_pii(text)
    if not found:
        return GuardrailVerdict(allowed=True)
    return GuardrailVerdict(allowed=False, reason=f"contains {', '.join(found)}")


BUILTIN_GUARDRAILS: dict[str, Guardrail] = {"pii": pii}

RELEVANCE_INSTRUCTIONS = (
    "You are a relevance guardrail. Decide whether the user's request is about {topic}. "
    "Answer allowed=true when it is, allowed=false with a one-sentence reason when not.")


def relevance_agent(topic: str, model: str = "offline:fast") -> dict[str, Any]:
    """A catalogue agent entry for the `relevance` guardrail on `topic` (a cheap model)."""
    return {"description": f"Checks that requests are about {topic}.",
            "instructions": RELEVANCE_INSTRUCTIONS.format(topic=topic), "model": model,
            "contract": "baton.GuardrailVerdict", "max_output_tokens": 200, "timeout_s": 20}
