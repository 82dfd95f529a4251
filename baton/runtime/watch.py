"""Watching a run as it happens: its events and those of every nested run, merged.

`events(client, workflow_id)` subscribes to the run's Workflow Stream and, as
nested runs appear (child ids start with the run's id), to theirs, and yields
`(workflow_id, offset, RunEvent)` in arrival order until the run has ended and
every stream is drained. Offsets are per workflow: pass the last ones back
(`from_offsets`) to resume where a watcher left off; `starter.py watch` keeps them
in a small cursor file so a watcher that disconnects and comes back resumes.

A stream is read through its run, so while no worker runs the run nothing comes:
the watcher keeps waiting (a poll the server gives up on is made again) and, with
`on_notice`, is told within seconds that no worker polls the run's task queue, and
again when one does (baton/runtime/liveness.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.service import RPCError

from baton.core.events import EVENTS_TOPIC, RunEvent
from baton.runtime.liveness import serving_workers
from baton.telemetry.search import nested_runs

# How often new nested runs are looked for while watching.
DISCOVERY_INTERVAL_S = 1.0
POLL_COOLDOWN = timedelta(milliseconds=100)
# How often the watcher checks that a worker polls the run's task queue, and waits
# before polling a stream again after the server gave up on a poll (no worker).
PRESENCE_INTERVAL_S = 2.0

Item = tuple[str, int, RunEvent]
Notice = Callable[[str], None]


async def events(client: Client, workflow_id: str, *,
                 from_offsets: dict[str, int] | None = None,
                 on_notice: Notice | None = None) -> AsyncIterator[Item]:
    """Every event of the run and its nested runs, from `from_offsets` on; `on_notice`
    is told when no worker polls the run's task queue, and when one does again."""
    offsets = dict(from_offsets or {})
    queue: asyncio.Queue[Item | str] = asyncio.Queue()
    tasks: dict[str, asyncio.Task[None]] = {}

    async def follow(wid: str) -> None:
        try:
            while not await drain(wid):
                await asyncio.sleep(PRESENCE_INTERVAL_S)
        finally:
            await queue.put(wid)  # this stream is drained

    async def drain(wid: str) -> bool:
        """Read the stream to its end (True), or until the server gives up (False)."""
        stream = WorkflowStreamClient.create(client, wid)
        try:
            async for item in stream.subscribe(EVENTS_TOPIC, offsets.get(wid, 0),
                                               result_type=RunEvent,
                                               poll_cooldown=POLL_COOLDOWN):
                offsets[wid] = item.offset + 1
                await queue.put((wid, item.offset + 1, item.data))
        except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
            if await _running(client, wid):
                return False  # no worker answered the poll: poll again
            if on_notice is None:
                raise
            # An ended run's last events are read with a query, which needs a worker.
            on_notice(f"the rest of {wid}'s events cannot be read without a worker "
                      f"({getattr(err, 'message', err)})")
        return True

    def start(wid: str) -> None:
        if wid not in tasks:
            tasks[wid] = asyncio.create_task(follow(wid))

    async def discover() -> None:
        while True:
            query = nested_runs(workflow_id)
            async for child in client.list_workflows(query):
                if "/shard-" not in child.id:  # shards have no stream; their branches do
                    start(child.id)
            root = await client.get_workflow_handle(workflow_id).describe()
            if root.status != WorkflowExecutionStatus.RUNNING:
                return
            await asyncio.sleep(DISCOVERY_INTERVAL_S)

    start(workflow_id)
    discovery = asyncio.create_task(discover())
    presence = (asyncio.create_task(_tell_presence(client, workflow_id, on_notice))
                if on_notice else None)
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
        if presence is not None:
            presence.cancel()
        for task in tasks.values():
            task.cancel()


async def _running(client: Client, workflow_id: str) -> bool:
    described = await client.get_workflow_handle(workflow_id).describe()
    return described.status == WorkflowExecutionStatus.RUNNING


async def _tell_presence(client: Client, workflow_id: str, on_notice: Notice) -> None:
    """Say when no worker polls the run's task queue, and when one does again, while
    the run runs."""
    absent = False
    while True:
        try:
            described = await client.get_workflow_handle(workflow_id).describe()
            queue = described.task_queue
            serving = await serving_workers(client, queue)
        except RPCError:
            return  # gone, or this client may not describe task queues: nothing to tell
        if described.status != WorkflowExecutionStatus.RUNNING:
            return
        if not serving and not absent:
            on_notice(f"no worker is polling task queue {queue}; waiting (the run goes "
                      "on when a worker starts)")
        elif serving and absent:
            on_notice(f"a worker is polling task queue {queue} again")
        absent = not serving
        await asyncio.sleep(PRESENCE_INTERVAL_S)


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
