"""How the offline model fills a tool's arguments: from what the user wrote, by each
parameter's name and JSON-schema type, as a literal-minded model would.

The latest user message is read first, earlier ones (newest first) only for things
a person does not repeat (an order id, an email, a date, a city). What is looked
for depends on the parameter: an id (`order_id` <- "A-1042" or "#1042"), an email,
an ISO date, a city ("in Oslo"), a person's or a quoted name, an amount ("$42.50",
"25 USD") for money-like names, a number (next to the parameter's own word, "3
nights", or the next one not used yet), an enum value the message names, or the
message itself for free text (`query`, `reason`...). An optional parameter with
nothing found is left out, so its default applies; a required one gets a short
placeholder that says it is offline (a number gets the smallest value its schema
allows, since a number cannot say so). Nothing here is random: the same messages
give the same arguments.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from baton.activities.providers.schema_instance import build_instance
from baton.core.text import shorten

# Parameter names (or their last word) that hold an identifier.
ID_WORDS = frozenset({"id", "ids", "number", "no", "num", "code", "sku", "ref", "reference"})
# Words of parameter names that hold free text: the request itself.
TEXT_WORDS = frozenset({"query", "question", "text", "topic", "prompt", "q", "search",
                        "keywords", "message", "request", "reason", "note", "notes",
                        "description", "comment", "input", "instructions", "content", "body",
                        "subject", "details"})
PLACE_WORDS = frozenset({"city", "location", "place", "town", "destination", "where",
                         "region", "country"})
PERSON_WORDS = frozenset({"name", "customer", "user", "person", "passenger", "recipient",
                          "owner", "author", "title"})
MONEY_WORDS = frozenset({"amount", "price", "cost", "total", "sum", "fee", "usd", "eur", "gbp",
                         "dollars", "payment", "refund", "charge", "balance", "budget"})
DATE_WORDS = frozenset({"date", "day", "deadline", "due", "birthday"})

WEEKDAY = re.compile(r"\b(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day\b", re.I)
ID_TOKEN = re.compile(r"\b[A-Z]{1,5}-?\d+\b")
HASH_ID = re.compile(r"#(\d+)\b")
LONG_NUMBER = re.compile(r"(?<![\w.$€£-])(\d{3,})(?![\w.-])")
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
DATE_TIME = re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
                       r"(?:Z|[+-]\d{2}:?\d{2})?")
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
MONEY = re.compile(r"[$€£]\s?(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s?(?:usd|eur|gbp|dollars?|euros?"
                   r"|pounds?)\b", re.I)
NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w-]|\.\d)")
# A capitalised phrase after a preposition: "in Oslo", "to New York".
PLACE = re.compile(r"\b(?:in|at|for|to|near|from)\s+([A-Z][a-zA-Z'-]*[a-z](?:\s+[A-Z][a-zA-Z'-]*"
                   r"[a-z])*)")
CAPITALISED = re.compile(r"[A-Z][a-zA-Z'-]*[a-z](?:\s+[A-Z][a-zA-Z'-]*[a-z])*")
QUOTED = re.compile(r"[\"“']([^\"”']{1,80})[\"”']")
# Capitalised words that are no place or person.
NOT_NAMES = frozenset({
    "I", "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December", "Monday", "Tuesday", "Wednesday",
    "Thursday", "Friday", "Saturday", "Sunday", "Today", "Tomorrow", "Yesterday",
    "Please", "Thanks", "Hello", "Hi"})
FREE_TEXT_CHARS = 200


@dataclass
class _Numbers:
    """The numbers of one message, in order, and which a parameter has taken."""

    money: list[float]
    plain: list[tuple[int, float]]  # (position, value)
    text: str
    taken: set[int] = field(default_factory=set)


def tool_arguments(parameters: dict[str, Any], turns: Sequence[str], *,
                   tool: str) -> dict[str, Any]:
    """Arguments valid for `parameters` (a tool's JSON schema) taken from `turns`: the
    latest user message first, then earlier ones, newest first."""
    latest = turns[0] if turns else ""
    numbers = _numbers(latest)
    defs = parameters.get("$defs", {})
    required = set(parameters.get("required", []))
    arguments: dict[str, Any] = {}
    for name, raw in parameters.get("properties", {}).items():
        node = _resolve(raw, defs)
        value = _extract(name, node, turns, numbers, tool=tool)
        if value is _MISSING and name in required:
            value = _placeholder(name, node, defs, turns, numbers, tool=tool)
        if value is not _MISSING:
            arguments[name] = value
    return arguments


_MISSING: Any = object()


def _extract(name: str, node: dict[str, Any], turns: Sequence[str], numbers: _Numbers, *,
             tool: str) -> Any:
    """What the messages say for one parameter, or _MISSING."""
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return _enum(list(node["enum"]), turns[0] if turns else "")
    kind = _kind(node)
    if kind in ("integer", "number"):
        return _number(name, node, numbers, integer=kind == "integer")
    if kind == "boolean":  # said when the message names it ("express" for `express`)
        phrase = " ".join(_words(name))
        return True if phrase and re.search(rf"\b{re.escape(phrase)}\b", numbers.text, re.I) \
            else _MISSING
    if kind == "string":
        found = _string(name, node, turns, tool=tool)
        return _fitted(found, node) if found is not None else _MISSING
    return _MISSING  # objects and arrays: built from the schema when required


def _string(name: str, node: dict[str, Any], turns: Sequence[str], *, tool: str) -> str | None:
    ordered = _words(name)
    words = set(ordered)
    latest = turns[0] if turns else ""
    form = node.get("format", "")
    if name == "task":  # a supervisor's delegation to a worker offered as a tool
        return f"As {tool}, handle your part of: {shorten(latest, FREE_TEXT_CHARS)}"
    if form == "email" or "email" in words:
        return _first(EMAIL, turns)
    if form == "date-time":
        return _first(DATE_TIME, turns) or _first(DATE, turns)
    if form == "date" or words & DATE_WORDS:
        # An ISO date, else a day of the week named in the message ("on Sunday").
        return _first(DATE, turns) or _first(WEEKDAY, turns)
    if ordered and ordered[-1] in ID_WORDS:
        return _identifier(turns)
    if words & PLACE_WORDS:
        return _first_group(PLACE, turns, skip=NOT_NAMES)
    if words & TEXT_WORDS:
        return shorten(latest, FREE_TEXT_CHARS) if latest.strip() else None
    if words & PERSON_WORDS:
        return _quoted(latest) or _person(turns)
    return _quoted(latest)


def _identifier(turns: Sequence[str]) -> str | None:
    for text in turns:
        for pattern in (ID_TOKEN, HASH_ID, LONG_NUMBER):
            match = pattern.search(_without(text, EMAIL, DATE_TIME, DATE, MONEY))
            if match:
                return match.group(match.lastindex or 0)
    return None


def _number(name: str, node: dict[str, Any], numbers: _Numbers, *, integer: bool) -> Any:
    """A number next to the parameter's own word, an amount for money-like names, else
    the first number no other parameter took; within the schema's bounds."""
    words = set(_words(name))
    candidates: list[tuple[int | None, float]] = []
    for word in sorted(words - ID_WORDS):
        if len(word) < 3:  # "a" or "b" would find "3 bananas"
            continue
        near = re.search(rf"(\d+(?:\.\d+)?)\s*{re.escape(word)}|\b{re.escape(word)}s?\s*"
                         rf"(?:of|:|=)?\s*(\d+(?:\.\d+)?)\b", numbers.text, re.I)
        if near:
            group = 1 if near.group(1) else 2
            candidates.append((near.start(group), float(near.group(group))))
    if words & MONEY_WORDS:
        candidates += [(None, value) for value in numbers.money]
    candidates += [(p, v) for p, v in numbers.plain if p not in numbers.taken]
    for position, value in candidates:
        if _within(value, node) and (not integer or value.is_integer()):
            if position is not None:
                numbers.taken.add(position)
            return int(value) if integer else value
    return _MISSING


def _enum(options: list[Any], text: str) -> Any:
    """The option the message names first (by its words, "next_day" as "next day")."""
    found: list[tuple[int, Any]] = []
    for option in options:
        phrase = " ".join(_words(str(option)))
        match = re.search(rf"\b{re.escape(phrase)}\b", " ".join(_words(text))) \
            if phrase else None
        if match:
            found.append((match.start(), option))
    return min(found, key=lambda pair: pair[0])[1] if found else _MISSING


def _placeholder(name: str, node: dict[str, Any], defs: dict[str, Any], turns: Sequence[str],
                 numbers: _Numbers, *, tool: str) -> Any:
    """What a required parameter gets when the messages do not say: honest where the
    type allows it, the smallest valid value for a number, the first option of an enum."""
    if "enum" in node:
        return node["enum"][0]
    kind = _kind(node)
    if kind in ("integer", "number"):
        return _smallest(node, integer=kind == "integer")
    if kind == "boolean":
        return False
    if kind == "string":
        return _fitted(f"[offline: no {name} in the request]", node)
    if kind == "null":
        return None

    def write(inner: str, min_len: int) -> str:
        text = _string(inner.split("[")[0], {}, turns, tool=tool)
        text = text or f"[offline: no {inner} in the request]"
        return text + "." * max(0, min_len - len(text))

    def number(inner: str, sub: dict[str, Any]) -> float | None:
        value = _number(inner.split("[")[0], sub, numbers, integer=_kind(sub) == "integer")
        return None if value is _MISSING else float(value)

    def choose(inner: str, options: list[Any]) -> Any:
        picked = _enum(options, turns[0] if turns else "")
        return options[0] if picked is _MISSING else picked

    # Objects and arrays: every field filled the same way, by its own name.
    return build_instance({**node, "$defs": defs}, choose=choose, write=write, number=number)


def _numbers(text: str) -> _Numbers:
    """The amounts and the other numbers of a message (ids, dates and emails are no
    numbers of their own)."""
    cleared = _without(text, EMAIL, DATE_TIME, DATE, ID_TOKEN, HASH_ID)
    money = [float(m.group(1) or m.group(2)) for m in MONEY.finditer(cleared)]
    plain = [(m.start(), float(m.group(1)))
             for m in NUMBER.finditer(_without(cleared, MONEY))]
    return _Numbers(money=money, plain=plain, text=cleared)


def _without(text: str, *patterns: re.Pattern[str]) -> str:
    """`text` with every match of `patterns` blanked out (positions kept)."""
    for pattern in patterns:
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    return text


def _first(pattern: re.Pattern[str], turns: Sequence[str]) -> str | None:
    for text in turns:
        if match := pattern.search(text):
            return match.group(0)
    return None


def _first_group(pattern: re.Pattern[str], turns: Sequence[str], *,
                 skip: frozenset[str]) -> str | None:
    for text in turns:
        for match in pattern.finditer(text):
            if match.group(1) not in skip:
                return match.group(1)
    return None


def _person(turns: Sequence[str]) -> str | None:
    """A capitalised name that does not open a sentence ("the account of Ada Lovelace")."""
    for text in turns:
        for match in CAPITALISED.finditer(text):
            opens = re.search(r"(^|[.!?]\s+|\n)$", text[:match.start()]) is not None
            if not opens and match.group(0) not in NOT_NAMES:
                return match.group(0)
    return None


def _quoted(text: str) -> str | None:
    match = QUOTED.search(text)
    return match.group(1).strip() if match else None


def _fitted(text: str, node: dict[str, Any]) -> str:
    """`text` cut to the schema's maximum length, padded to its minimum."""
    if "maxLength" in node:
        text = text[: int(node["maxLength"])]
    return text + "." * max(0, int(node.get("minLength", 0)) - len(text))


def _within(value: float, node: dict[str, Any]) -> bool:
    return ((node.get("minimum") is None or value >= node["minimum"])
            and (node.get("maximum") is None or value <= node["maximum"])
            and (node.get("exclusiveMinimum") is None or value > node["exclusiveMinimum"])
            and (node.get("exclusiveMaximum") is None or value < node["exclusiveMaximum"]))


def _smallest(node: dict[str, Any], *, integer: bool) -> float | int:
    step = 1 if integer else 0.01
    if node.get("minimum") is not None:
        value = float(node["minimum"])
    elif node.get("exclusiveMinimum") is not None:
        value = float(node["exclusiveMinimum"]) + step
    else:
        value = 0.0
    return int(value) if integer else value


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The schema a parameter's value must meet: through $ref, and the first non-null
    option of an anyOf (an Optional)."""
    if "$ref" in node:
        return _resolve(defs.get(str(node["$ref"]).rsplit("/", 1)[-1], {}), defs)
    for key in ("anyOf", "oneOf"):
        if key in node:
            options = [o for o in node[key] if o.get("type") != "null"] or node[key]
            return _resolve({**options[0], **{k: v for k, v in node.items() if k != key}}, defs)
    return node


def _kind(node: dict[str, Any]) -> str:
    kind = node.get("type", "object" if "properties" in node else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    return str(kind)


def _words(name: str) -> list[str]:
    """The lowercase words of a name or text: "orderId" and "order_id" -> order, id."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return re.findall(r"[a-z0-9]+", spaced.lower())
