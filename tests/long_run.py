"""The long tool-heavy conversation of temporalio/sdk-python#1890, for a test and a bench.

One agent reads a book a page per tool call: the model (the fake server, speaking the
OpenAI wire format through the real client) asks for one page per turn, each page
about 8,000 characters (some 2,000 tokens), so after 99 pages the conversation holds
about 200,000 tokens, and the 100th call writes the answer. Inline, every call would
carry the whole conversation so far into the history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory

import baton
from baton.core.model_io import ToolCall
from baton.core.runs import RunResult
from baton.define.catalogue import parse_catalogue
from tests.fake_llm import FakeLLMServer, final, tool_calls
from tests.helpers import fake_provider, finish, start, worker

PAGE_CHARS = 8_000
WORDS = ("harbour", "lantern", "ledger", "tide", "keeper", "signal", "north", "storm",
         "copper", "gull", "anchor", "quay")


def page_text(page: int) -> str:
    """Page `page` of the book: about PAGE_CHARS characters, different on every page."""
    words: list[str] = []
    size = 0
    index = page
    while size < PAGE_CHARS:
        word = WORDS[(index * 7 + page) % len(WORDS)]
        words.append(word)
        size += len(word) + 1
        index += 1
    return f"Page {page}. " + " ".join(words)


@baton.tool(max_result_chars=PAGE_CHARS + 100)
def read_page(page: int) -> str:
    """Read one page of the book.

    Args:
        page: The page number, from 1.
    """
    return page_text(page)


READER = baton.Agent("reader", "Read the book page by page, then summarise it.",
                     tools=[read_page], max_tool_turns=100)


@dataclass
class LongRun:
    result: RunResult
    history: WorkflowHistory
    tokens: int  # the last call's conversation, at four characters a token

    @property
    def history_bytes(self) -> int:
        return sum(event.ByteSize() for event in self.history.events)

    @property
    def events(self) -> int:
        return len(self.history.events)

    def model_inputs(self) -> list[dict[str, Any]]:
        """Each call_model input as recorded (plain JSON: no key, nothing offloaded)."""
        scheduled = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        return [json.loads(e.activity_task_scheduled_event_attributes.input.payloads[0].data)
                for e in self.history.events if e.event_type == scheduled
                and e.activity_task_scheduled_event_attributes.activity_type.name
                == "call_model"]

    def largest_model_input(self) -> int:
        """The largest call_model input the history records inline."""
        scheduled = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        return max(sum(p.ByteSize() for p in e.activity_task_scheduled_event_attributes
                       .input.payloads)
                   for e in self.history.events if e.event_type == scheduled
                   and e.activity_task_scheduled_event_attributes.activity_type.name
                   == "call_model")


def script(fake: FakeLLMServer, calls: int) -> None:
    """The model asks for pages 1..calls-1, one per turn; the last call answers."""
    fake.reply_next(*(tool_calls(ToolCall(id=f"call_{page}", name="read_page",
                                          arguments={"page": page}))
                      for page in range(1, calls)),
                    final("The book is about a lighthouse keeper's ledger."))


def catalogue_on(fake: FakeLLMServer) -> Any:
    raw = READER.catalogue().model_dump(mode="json")
    raw["providers"] = {name: config.model_dump(mode="json")
                        for name, config in fake_provider("openai", fake).items()}
    raw["agents"]["reader"]["model"] = "fake:test-model"
    raw["agents"]["reader"]["timeout_s"] = 60
    return parse_catalogue(raw)


async def run_long_conversation(client: Client, task_queue: str, fake: FakeLLMServer,
                                calls: int = 100, tools: list[baton.Tool] | None = None,
                                prompt: str = "Read the whole book.",
                                **worker_options: Any) -> LongRun:
    """Run the reader through `calls` model calls (the worker serving `tools`, by
    default `read_page`); its result and history."""
    script(fake, calls)
    async with worker(client, task_queue, tools=tools or [read_page],
                      providers=fake_provider("openai", fake), **worker_options):
        handle = await start(client, task_queue, "reader", prompt,
                             cat=catalogue_on(fake), result_type=RunResult)
        result = await finish(handle)
    history = await handle.fetch_history()
    last = fake.requests[-1].body["messages"]
    tokens = sum(len(str(m.get("content") or "")) for m in last) // 4
    return LongRun(result, history, tokens)
