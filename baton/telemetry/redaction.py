"""Redaction: what telemetry records of an exception when content is withheld.

An exception's message may be anyone's text (a tool's error quoting its arguments,
a provider's error body quoting the prompt), so unless `BATON_TRACE_CONTENT=1`
spans and logs record its type and its ApplicationError type instead. Shared by
the trace setup (observability.py) and the tracer that applies it (redacted_spans.py).
"""

from __future__ import annotations

import os
import re
import traceback

from temporalio.exceptions import ApplicationError

CONTENT_VAR = "BATON_TRACE_CONTENT"
WITHHELD = f"message withheld ({CONTENT_VAR}=1 records it)"
# An ApplicationError type worth keeping is a name (ModelBadRequest, CircuitOpen);
# anything else might be text a tool built from its input.
_ERROR_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,79}")


def content_recorded() -> bool:
    """Whether prompts, arguments and exception messages may be recorded in spans and
    logs (`BATON_TRACE_CONTENT=1`)."""
    return os.environ.get(CONTENT_VAR, "") == "1"


def error_type(error: BaseException) -> str | None:
    """The first ApplicationError type along `error` and its causes (Baton's, e.g.
    ModelBadRequest, or a tool's), when it is a plain name."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if (isinstance(current, ApplicationError) and current.type
                and _ERROR_TYPE.fullmatch(current.type)):
            return current.type
        current = current.__cause__
    return None


def redacted_error(error: BaseException, qualified: bool = False) -> str:
    """`error` described without its message: its class and its error type."""
    cls = type(error)
    name = (f"{cls.__module__}.{cls.__qualname__}"
            if qualified and cls.__module__ != "builtins" else cls.__qualname__)
    kind = error_type(error)
    if kind is None or kind == cls.__qualname__:  # Baton's errors are named by their type
        return f"{name}: {WITHHELD}"
    return f"{name} ({kind}): {WITHHELD}"


def redacted_traceback(error: BaseException) -> str:
    """`error`'s traceback, causes first as Python prints it, with every exception's
    message replaced by its type (the frames and their source lines are code)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not e for e in chain):
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__
                                        else current.__context__)
    parts = ["Traceback (most recent call last):\n"
             + "".join(traceback.format_list(traceback.extract_tb(e.__traceback__)))
             + redacted_error(e, qualified=True) + "\n" for e in reversed(chain)]
    return "\nThe above exception led to the following exception:\n\n".join(parts)
