"""How the starter shows what a run said: safe terminal text, fields, money, JSON.

Everything a run prints comes from prompts, models and tools, so none of it may
drive the terminal: `clean` removes control sequences (colours, cursor moves, OSC
titles, hyperlinks and clipboard writes, carriage returns, bidi overrides) and the
starter's `main` passes all its output through it (`clean_output`). A contract
answer is JSON text; people read it as fields (`field_lines`), and `--json` carries
it as JSON, not as a string of escaped JSON (`decoded_answer`).
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from typing import Any, TextIO, cast

_CONTROL = re.compile(
    r"""
      \x1b\[[0-?]*[\x20-/]*[@-~]             # CSI: colours, cursor moves, erasing
    | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?     # OSC: titles, hyperlinks, clipboard
    | \x1b[PX^_][^\x1b]*(?:\x1b\\)?          # DCS, SOS, PM and APC strings
    | \x1b.?                                 # any other escape, and a lone ESC
    | \x9b[0-?]*[\x20-/]*[@-~]               # the 8-bit CSI
    | [\x00-\x08\x0b-\x1f\x7f-\x9f]          # C0 and C1 controls but tab and newline
    | [\u202a-\u202e\u2066-\u2069]           # bidi overrides: text shown out of order
    """,
    re.VERBOSE | re.DOTALL)


def clean(text: str) -> str:
    """`text` without anything a terminal would act on rather than show."""
    return _CONTROL.sub("", text.replace("\r\n", "\n"))


class _CleanStream(io.TextIOBase):
    """A text stream that writes `clean(text)` to the stream it wraps."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self._target = target

    def write(self, text: str) -> int:
        self._target.write(clean(text))
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return self._target.isatty()

    def fileno(self) -> int:
        return self._target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._target.encoding


@contextmanager
def clean_output() -> Iterator[None]:
    """Within the block, everything printed to stdout and stderr goes through `clean`."""
    with redirect_stdout(cast(TextIO, _CleanStream(sys.stdout))), \
            redirect_stderr(cast(TextIO, _CleanStream(sys.stderr))):
        yield


def usd(cost: float | None) -> str:
    """A cost as people read it: `$0` (offline), `<$0.0001`, `$0.0042`, `$0.10`, `$12.50`."""
    if cost is None:
        return "unknown"
    if cost == 0:
        return "$0"
    if cost < 0.0001:
        return "<$0.0001"
    if cost >= 1:
        return f"${cost:,.2f}"
    digits = f"{cost:.4f}".rstrip("0")
    return "$" + digits.ljust(len("0.00"), "0")


def structured(answer: str) -> dict[str, Any] | list[Any] | None:
    """The object or list an answer is the JSON text of (a contract answer), else None."""
    text = answer.strip()
    if not text.startswith(("{", "[")):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict | list) else None


def decoded_answer(answer: str) -> Any:
    """For JSON output: a contract answer as JSON itself, any other answer as text."""
    value = structured(answer)
    return answer if value is None else value


def answer_lines(answer: str) -> list[str]:
    """An answer for the terminal: a contract answer as fields, text as its lines."""
    value = structured(answer)
    return answer.splitlines() if value is None else field_lines(value)


def field_lines(value: Any, indent: str = "") -> list[str]:
    """`key: value` lines, nested values indented below their key, list items as `- `."""
    if isinstance(value, dict):
        return [line for key, item in value.items()
                for line in _entry_lines(f"{indent}{key}:", item, indent)]
    if isinstance(value, list):
        return [line for item in value for line in _item_lines(item, indent)]
    return _text_lines(indent, value, indent)


def _entry_lines(head: str, value: Any, indent: str) -> list[str]:
    if isinstance(value, dict | list) and value:
        return [head, *field_lines(value, indent + "  ")]
    return _text_lines(head + " ", value, indent + "  ")


def _item_lines(value: Any, indent: str) -> list[str]:
    if isinstance(value, dict | list) and value:
        first, *rest = field_lines(value, indent + "  ")
        return [f"{indent}- {first[len(indent) + 2:]}", *rest]
    return _text_lines(f"{indent}- ", value, indent + "  ")


def _text_lines(head: str, value: Any, indent: str) -> list[str]:
    """A scalar after `head`; the lines of a multi-line text continue under it."""
    first, *rest = _scalar(value).splitlines() or [""]
    return [f"{head}{first}".rstrip(), *(f"{indent}{line}" for line in rest)]


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)  # empty: {} or []
    return str(value)
