"""The workflow side of token streaming (baton/runtime/streaming.py has the contract).

A run's feed is the Workflow Stream of its top-level workflow (a pattern, a flow or a
session), which `PatternWorkflow` and `SessionWorkflow` host. What a workflow
publishes goes there: appended directly when this workflow is the top-level one
(no history), else forwarded in one signal per workflow activation (the events
recorded during one activation travel together). The target is the root Temporal
recorded for this workflow, so a run's input can turn streaming on but never aim it.
"""

from __future__ import annotations

import asyncio
import base64

from temporalio import workflow
from temporalio.contrib.workflow_streams import (
    PublishEntry,
    PublishInput,
    WorkflowStream,
    WorkflowStreamState,
)

with workflow.unsafe.imports_passed_through():
    from baton.core.model_io import StreamTarget
    from baton.core.runs import RunOptions
    from baton.core.stream_events import STREAM_TOPIC, StreamEvent

# The signal a Workflow Stream takes publications on (WorkflowStreamClient's own).
PUBLISH_SIGNAL = "__temporal_workflow_stream_publish"
# How much of its feed a workflow carries through continue-as-new (encoded bytes): the
# latest events stay readable by a subscriber arriving after it, the input stays small.
CARRIED_FEED_BYTES = 256 * 1024


def feed_workflow_id() -> str:
    """The workflow holding this run's feed: the top-level one of this workflow's tree."""
    info = workflow.info()
    return info.root.workflow_id if info.root is not None else info.workflow_id


def stream_target(options: RunOptions, path: str) -> StreamTarget | None:
    """Where a model call of this run streams its text; None when the run does not."""
    if not options.stream:
        return None
    return StreamTarget(workflow_id=feed_workflow_id(), path=path,
                        message_id=f"msg-{workflow.uuid4().hex[:16]}")


def publish(event: StreamEvent) -> None:
    """Put `event` in the run's feed (a no-op in a workflow that hosts no feed)."""
    instance = workflow.instance()
    if workflow.info().root is None:
        feed = getattr(instance, "_stream", None)
        if isinstance(feed, WorkflowStream):
            feed.topic(STREAM_TOPIC).publish(event)
        return
    forwarder = getattr(instance, "_baton_forwarder", None)
    if not isinstance(forwarder, _Forwarder):
        forwarder = _Forwarder(feed_workflow_id())
        instance._baton_forwarder = forwarder
    forwarder.add(event)


async def forwarded() -> None:
    """Wait until what this workflow forwarded has reached the feed: call before the
    workflow completes, so its last events are not lost with it."""
    forwarder = getattr(workflow.instance(), "_baton_forwarder", None)
    if isinstance(forwarder, _Forwarder):
        await forwarder.drain()


class _Forwarder:
    """Signals a nested run's events to its top-level run, batched per activation."""

    def __init__(self, target: str) -> None:
        self._target = target
        self._batch: list[StreamEvent] = []
        self._sending: asyncio.Task[None] | None = None

    def add(self, event: StreamEvent) -> None:
        self._batch.append(event)
        if self._sending is None or self._sending.done():
            self._sending = asyncio.ensure_future(self._send())

    async def drain(self) -> None:
        while self._sending is not None and not self._sending.done():
            await self._sending

    async def _send(self) -> None:
        await asyncio.sleep(0)  # no timer: lets this activation's other events join
        converter = workflow.payload_converter()
        handle = workflow.get_external_workflow_handle(self._target)
        while self._batch:
            batch, self._batch = self._batch, []
            entries = [PublishEntry(topic=STREAM_TOPIC, data=base64.b64encode(
                converter.to_payloads([event])[0].SerializeToString()).decode("ascii"))
                for event in batch]
            try:
                await handle.signal(PUBLISH_SIGNAL, PublishInput(items=entries))
            except Exception:
                # The top-level run is gone (ended, reset): nobody reads its feed now, and
                # a lost progress event must not fail this run.
                workflow.logger.debug("stream events of %s not forwarded to %s",
                                      workflow.info().workflow_id, self._target)


def carried_feed(feed: WorkflowStream) -> WorkflowStreamState:
    """The feed's state for the next run: offsets going on, its latest events kept."""
    state = feed.get_state()
    first, size = len(state.log), 0
    while first and size + len(state.log[first - 1].data) <= CARRIED_FEED_BYTES:
        first -= 1
        size += len(state.log[first].data)
    return WorkflowStreamState(log=state.log[first:], base_offset=state.base_offset + first,
                               publishers=state.publishers)
