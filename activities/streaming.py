"""The model activity's side of token streaming (baton/runtime/streaming.py has the contract).

`TextFeed` publishes one model call's text to its run's feed while the provider
writes it: the first delta at once (the delay a person notices), then what was
written since, as one delta per batch at growing intervals (one signal per batch in
the run's history, never one per token). A retry announces first that the text of the
previous attempt is void; a failed attempt says so itself, before it ends, when its
worker is still alive.
Publishing is best effort: a feed nobody can reach never fails the model call.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from baton.core.model_io import ModelRequest, ModelResponse, StreamTarget
from baton.core.stream_events import (
    BATCH_INTERVAL_GROWTH,
    BATCH_INTERVAL_S,
    MAX_BATCH_INTERVAL_S,
    STREAM_TOPIC,
    AttemptRestarted,
    TextDelta,
    TextEnd,
    TextStart,
    ToolCallRequested,
)

# A feed that cannot be reached for this long is given up (the call goes on).
MAX_PUBLISH_RETRY = timedelta(seconds=20)
# How long the end of a call waits for its last batch to be sent.
LAST_BATCH_WAIT_S = 5.0


class TextFeed:
    """One model call's text events, published while the call runs.

    Its own sender task sends each batch and is never cancelled: a signal cancelled
    in flight was seen to stall its client for seconds, and the call with it.
    """

    def __init__(self, request: ModelRequest, target: StreamTarget) -> None:
        info = activity.info()
        self._request = request
        self._target = target
        self._attempt = info.attempt
        self._workflow_id = info.workflow_id or ""
        self._client = WorkflowStreamClient.create(activity.client(), target.workflow_id,
                                                   max_retry_duration=MAX_PUBLISH_RETRY)
        self._topic = self._client.topic(STREAM_TOPIC)
        self.started = False
        self._written: list[str] = []
        self._pending: list[str] = []  # deltas not yet published: one item per batch
        self._wake = asyncio.Event()
        self._closing = False
        self._sender: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TextFeed:
        self._sender = asyncio.create_task(self._send_batches())
        if self._attempt > 1:
            self._publish(AttemptRestarted, attempt=self._attempt,
                          reason=f"attempt {self._attempt - 1} failed; attempt "
                                 f"{self._attempt} starts over")
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        *_: object) -> None:
        self._release()
        if error is not None and self.started:
            self._publish(AttemptRestarted, attempt=0, reason=f"attempt {self._attempt} "
                          f"failed: {type(error).__name__}: {str(error)[:300]}")
        self._closing = True
        self._wake.set()
        if self._sender is not None:
            await asyncio.wait({self._sender}, timeout=LAST_BATCH_WAIT_S)

    def text(self, delta: str) -> None:
        """A piece of the answer, as the provider wrote it."""
        if not delta:
            return
        first = not self.started
        if first:
            self.started = True
            request = self._request
            self._publish(TextStart, model=request.model, attempt=self._attempt,
                          contract=request.output_schema_name
                          if request.output_schema is not None else None)
        self._written.append(delta)
        self._pending.append(delta)
        if first:
            self._wake.set()  # the first words go at once: the delay people notice

    def finish(self, response: ModelResponse) -> None:
        """The call's answer: its text if none was streamed, the end, the tools it asks."""
        self._release()
        if self.started and "".join(self._written) != response.text:
            # The answer is not the text written (Anthropic's structured answer is a
            # tool's input): the message must still read as the answer.
            self._publish(AttemptRestarted, attempt=self._attempt,
                          reason="the answer is the structured output, not the text")
            self.started, self._written = False, []
        if not self.started:
            self.text(response.text)
            self._release()
        if self.started:
            self._publish(TextEnd, finish_reason=response.finish_reason, usage=response.usage)
        for call in response.tool_calls:
            self._publish(ToolCallRequested, call_id=call.id, name=call.name,
                          arguments=call.arguments)

    async def _send_batches(self) -> None:
        """What was written since the last batch, in one signal, at growing intervals
        (at once when woken: the first words, the end)."""
        interval = BATCH_INTERVAL_S
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            if self.started:
                interval = min(interval * BATCH_INTERVAL_GROWTH, MAX_BATCH_INTERVAL_S)
            self._wake.clear()
            self._release()
            try:
                await self._client.flush()
            except Exception as err:  # the feed is progress for people, not the answer
                activity.logger.warning("could not stream text to %s: %s",
                                        self._target.workflow_id, err)
                return
            if self._closing:
                return

    def _release(self) -> None:
        """The deltas written since the last batch, as one."""
        if self._pending:
            delta, self._pending = "".join(self._pending), []
            self._publish(TextDelta, delta=delta)

    def _publish(self, event: type[Any], **fields: Any) -> None:
        self._topic.publish(event(
            workflow_id=self._workflow_id, path=self._target.path,
            message_id=self._target.message_id, agent=self._request.agent, **fields))
