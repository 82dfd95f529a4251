"""Printing a run's text as the models write it (`run --stream`, `watch --tokens`).

Each model call's text is printed under a header naming its agent and model, the
header repeated when calls running side by side (a fan-out's branches) take turns.
A retried or abandoned attempt is announced on its own line: the words printed
before it are void, and the retry's words follow. Nested runs' steps worth a
person's attention (handoffs, tool calls, approvals, guardrails, errors) are shown
between the texts. Control sequences are removed by the starter's output filter
(baton/cli/output.py) as for everything it prints.
"""

from __future__ import annotations

import json
import sys

from temporalio.client import Client

from baton.core.text import shorten
from baton.runtime.streaming import StreamEvent, stream

# Steps shown between texts: what changes who is talking or asks for a person.
SHOWN_STEPS = ("handoff", "tool_call", "approval", "guardrail", "error", "fallback")


class TokenPrinter:
    """Writes events to stdout as they come; remembers which message it is inside."""

    def __init__(self) -> None:
        self._current: str | None = None  # the message whose text is being printed
        self._written: set[str] = set()  # messages with text on screen
        self._headers: dict[str, str] = {}
        self.status = 0

    def show(self, event: StreamEvent) -> None:
        if event.kind == "text_start":
            self._headers[event.message_id] = self._header(
                event.path, event.agent, event.model, event.contract)
        elif event.kind == "text_delta":
            if self._current != event.message_id:
                self._line(self._headers.get(event.message_id, f"[{event.agent}]"))
                self._current = event.message_id
            self._written.add(event.message_id)
            self._write(event.delta)
        elif event.kind == "text_end":
            if self._current == event.message_id:
                self._end_line()
        elif event.kind == "attempt_restarted":
            if event.message_id in self._written:
                self._written.discard(event.message_id)
                self._line(f"[! {event.agent}: attempt restarted ({shorten(event.reason, 160)}); "
                           "discard its text above]")
        elif event.kind == "tool_call":
            arguments = shorten(json.dumps(event.arguments), 120)
            self._line(f"[{self._where(event.path)}{event.agent} asks for {event.name}"
                       f"({arguments})]")
        elif event.kind == "step":
            step = event.event
            if step.kind == "step" and step.step in SHOWN_STEPS:
                mark = "" if step.ok else "! "
                self._line(f"[{mark}{self._where(step.path)}{step.step} {step.agent}: "
                           f"{shorten(step.detail, 160)}]")
        elif event.kind == "finished":
            self._line(f"[finished: {event.status}]")
        elif event.kind == "failed":
            self._line(f"[failed ({event.status}): {event.error_type or 'error'}: "
                       f"{shorten(event.error, 300)}]")
            self.status = 1

    def _header(self, path: str, agent: str, model: str, contract: str | None) -> str:
        answer = f" -> {contract}" if contract else ""
        return f"[{self._where(path)}{agent} · {model}{answer}]"

    @staticmethod
    def _where(path: str) -> str:
        return f"{path}: " if path else ""

    def _line(self, text: str) -> None:
        self._end_line()
        print(text, flush=True)

    def _write(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def _end_line(self) -> None:
        if self._current is not None:
            print(flush=True)
            self._current = None


async def print_tokens(client: Client, workflow_id: str, *, as_json: bool = False) -> int:
    """Print the run's feed until the run ends; 1 when it failed."""
    printer = TokenPrinter()
    async for event in stream(workflow_id, client=client):
        if as_json:
            print(event.model_dump_json(), flush=True)
            if event.kind == "failed":
                printer.status = 1
        else:
            printer.show(event)
    return printer.status
