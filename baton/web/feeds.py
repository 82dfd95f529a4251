"""One subscription per run and process, fanned out to every browser that watches it.

A run's feed is read by long-polling its workflow (an Update per batch, written to
its history), so a hundred people watching one run must not mean a hundred pollers.
`Feeds.open(run_id)` gives the process's one `Feed` of the run: a task reads the
run's stream from its start (baton/runtime/streaming.py), translates it to AG-UI
(baton/web/agui.py) and appends each event to a list that every subscriber walks at
its own pace. A subscriber that resumes (`Last-Event-ID`) starts after that id in
the same list. The list is a cache, not state: it is rebuilt from the run's feed by
any process, and dropped a while after its last subscriber left.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ag_ui.core import BaseEvent, RunErrorEvent
from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.service import RPCError

from baton.runtime.streaming import OffsetNotFound, RunNotFound, stream
from baton.web.agui import Translator, event_id, is_terminal, parse_event_id

log = logging.getLogger(__name__)

# How long a feed nobody reads is kept (a browser reconnecting finds it warm).
IDLE_KEEP_S = 30.0
# A feed whose reader lost the server tries again this often, this many times.
RETRY_INTERVAL_S = 1.0
RETRIES = 30
# How long a resuming subscriber waits for the feed to reach its Last-Event-ID.
LOCATE_TIMEOUT_S = 10.0


class FeedError(LookupError):
    """The run or the event id asked for does not exist; the message says which."""


@dataclass(frozen=True)
class Item:
    id: str
    position: int
    data: str  # the event as AG-UI JSON


class Feed:
    """The AG-UI events of one run, as far as its stream has been read."""

    def __init__(self, client: Client, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.items: list[Item] = []
        self.ended = False
        self.error: Exception | None = None
        self.subscribers = 0
        self.read_offset = -1  # the last feed offset read
        self._changed = asyncio.Condition()
        self._translator = Translator(thread_id=run_id, run_id=run_id)
        self._task = asyncio.create_task(self._read(), name=f"feed {run_id}")
        self.idle_since: float | None = None

    async def _read(self) -> None:
        try:
            await self._publish(0, self._translator.start())
            retries = RETRIES
            while not self.ended:
                try:
                    await self._follow()
                    break
                except (RunNotFound, OffsetNotFound):
                    raise
                except (RPCError, RuntimeError) as err:
                    retries -= 1
                    if retries < 0:
                        raise
                    log.warning("feed of %s interrupted (%s); reading on", self.run_id, err)
                    await asyncio.sleep(RETRY_INTERVAL_S)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            self.error = err
            if not isinstance(err, RunNotFound):
                await self._publish(self.read_offset + 2, [RunErrorEvent(
                    message=f"the run's event stream failed: {err}", code="StreamFailed")])
        finally:
            self.ended = True
            async with self._changed:
                self._changed.notify_all()

    async def _follow(self) -> None:
        after = None if self.read_offset < 0 else self.read_offset
        events = stream(self.run_id, client=self.client, after=after)
        async for event in events:
            self.read_offset = event.offset
            events_out = self._translator.translate(event)
            await self._publish(event.offset + 1, events_out)
            if any(is_terminal(e) for e in events_out):
                self.ended = True
                return

    async def _publish(self, position: int, events: list[BaseEvent]) -> None:
        if not events:
            return
        async with self._changed:
            self.items += [Item(event_id(position, n), position,
                                e.model_dump_json(by_alias=True))
                           for n, e in enumerate(events)]
            self._changed.notify_all()

    async def index_after(self, last_event_id: str) -> int:
        """Where a subscriber that last saw `last_event_id` goes on (FeedError if no
        event of this run has that id)."""
        position, _ = parse_event_id(last_event_id)

        def found() -> int | None:
            for index, item in enumerate(self.items):
                if item.id == last_event_id:
                    return index + 1
            return None

        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCATE_TIMEOUT_S
        checked_end = False
        async with self._changed:
            while True:
                if (index := found()) is not None:
                    return index
                if self.ended or (self.items and self.items[-1].position > position):
                    break
                if not checked_end:
                    checked_end = True
                    if position - 1 >= await self._feed_end():
                        break  # the run's stream has not got there
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)
        raise FeedError(f"run {self.run_id!r} has no event {last_event_id!r}; resume with "
                        "the id of an event this stream sent, or without Last-Event-ID "
                        "to read it from the start")

    async def _feed_end(self) -> int:
        try:
            return await WorkflowStreamClient.create(self.client, self.run_id).get_offset()
        except RPCError:
            return 1 << 62  # cannot tell: let the wait decide

    async def subscribe(self, start: int, idle_s: float) -> AsyncIterator[Item | None]:
        """Every item from index `start` on, waiting for new ones, until the run ends;
        None after each `idle_s` without one (time for a keep-alive)."""
        index = start
        while True:
            async with self._changed:
                if index >= len(self.items) and not self.ended:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), idle_s)
                batch = self.items[index:]
            if not batch and not self.ended:
                yield None
            for item in batch:
                yield item
            index += len(batch)
            if self.ended and index >= len(self.items):
                return

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


class Feeds:
    """The feeds of this process, by run id."""

    def __init__(self, client: Client, idle_keep_s: float = IDLE_KEEP_S) -> None:
        self.client = client
        self.idle_keep_s = idle_keep_s
        self._feeds: dict[str, Feed] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def open(self, run_id: str) -> Feed:
        self._sweep()
        feed = self._feeds.get(run_id)
        if feed is None or (feed.error is not None and feed.subscribers == 0):
            feed = self._feeds[run_id] = Feed(self.client, run_id)
            # Idle until someone watches it: a request that never does (refused, or
            # gone before its body) must not keep it polling the run.
            feed.idle_since = asyncio.get_running_loop().time()
        return feed

    @contextlib.asynccontextmanager
    async def watching(self, feed: Feed) -> AsyncIterator[Feed]:
        feed.subscribers += 1
        feed.idle_since = None
        try:
            yield feed
        finally:
            feed.subscribers -= 1
            if feed.subscribers == 0:
                feed.idle_since = asyncio.get_running_loop().time()

    def _sweep(self) -> None:
        now = asyncio.get_running_loop().time()
        for run_id, feed in list(self._feeds.items()):
            if feed.subscribers == 0 and feed.idle_since is not None \
                    and now - feed.idle_since > self.idle_keep_s:
                del self._feeds[run_id]
                closing = asyncio.ensure_future(feed.close())
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        for feed in self._feeds.values():
            await feed.close()
        self._feeds.clear()


def sse(item: Item) -> bytes:
    return f"id: {item.id}\ndata: {item.data}\n\n".encode()


def sse_comment(text: str) -> bytes:
    return f": {json.dumps(text)}\n\n".encode()
