"""Watching a run as it happens: its events and those of every nested run, merged.

`events(client, workflow_id)` subscribes to the run's Workflow Stream and, as
nested runs appear (child ids start with the run's id), to theirs, and yields
`(workflow_id, offset, RunEvent)` in arrival order until the run has ended and
every stream is drained. Offsets are per workflow: pass the last ones back
(`from_offsets`) to resume where a watcher left off; `starter.py watch` keeps them
in a small cursor file so a watcher that disconnects and comes back resumes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from baton.events import EVENTS_TOPIC, RunEvent

# How often new nested runs are looked for while watching.
DISCOVERY_INTERVAL_S = 1.0
POLL_COOLDOWN = timedelta(milliseconds=100)

Item = tuple[str, int, RunEvent]


async def events(client: Client, workflow_id: str, *,
                 from_offsets: dict[str, int] | None = None) -> AsyncIterator[Item]:
    """Every event of the run and its nested runs, from `from_offsets` on."""
    offsets = dict(from_offsets or {})
    queue: asyncio.Queue[Item | str] = asyncio.Queue()
    tasks: dict[str, asyncio.Task[None]] = {}

    async def follow(wid: str) -> None:
        stream = WorkflowStreamClient.create(client, wid)
        try:
            async for item in stream.subscribe(EVENTS_TOPIC, offsets.get(wid, 0),
                                               result_type=RunEvent,
                                               poll_cooldown=POLL_COOLDOWN):
                await queue.put((wid, item.offset + 1, item.data))
        finally:
            await queue.put(wid)  # this stream is drained

    def start(wid: str) -> None:
        if wid not in tasks:
            tasks[wid] = asyncio.create_task(follow(wid))

    async def discover() -> None:
        while True:
            query = f"WorkflowId STARTS_WITH '{workflow_id}/'"
            async for child in client.list_workflows(query):
                if "/shard-" not in child.id:  # shards have no stream; their branches do
                    start(child.id)
            root = await client.get_workflow_handle(workflow_id).describe()
            if root.status != WorkflowExecutionStatus.RUNNING:
                return
            await asyncio.sleep(DISCOVERY_INTERVAL_S)

    start(workflow_id)
    discovery = asyncio.create_task(discover())
    finished: set[str] = set()
    try:
        while True:
            if discovery.done() and finished >= set(tasks):
                break
            try:
                got = await asyncio.wait_for(queue.get(), DISCOVERY_INTERVAL_S)
            except TimeoutError:
                continue
            if isinstance(got, str):
                finished.add(got)
                if tasks[got].done() and (error := tasks[got].exception()) is not None:
                    raise error
                continue
            yield got
    finally:
        discovery.cancel()
        for task in tasks.values():
            task.cancel()


class Cursor:
    """Per-workflow offsets of one watched run, kept in a file between watchers."""

    def __init__(self, workflow_id: str, folder: Path | None = None) -> None:
        folder = folder or Path.home() / ".cache" / "baton" / "watch"
        self.path = folder / f"{workflow_id.replace('/', '_')}.json"
        try:
            self.offsets: dict[str, int] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.offsets = {}

    def advance(self, workflow_id: str, offset: int) -> None:
        self.offsets[workflow_id] = max(offset, self.offsets.get(workflow_id, 0))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.offsets))
