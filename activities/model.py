"""The one activity that calls a model.

`ModelCalls.call_model` checks the model's circuit breaker, picks the adapter for
the request's provider and awaits it while heartbeating, so a worker that dies
mid-call is noticed within the heartbeat timeout rather than after the whole
start-to-close timeout. Provider failures that retrying could fix count against the
breaker; an open breaker fails the call at once with a non-retryable `CircuitOpen`,
which sends the agent to its fallback model. In a run that streams, the text goes
to the run's feed as the provider writes it (activities/streaming.py).
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from baton.activities.breakers import BreakerBoard, CircuitOpenError
from baton.activities.conversations import (
    full_messages,
    offload_bytes,
    recent_conversations,
    store_conversation,
)
from baton.activities.heartbeat import heartbeating
from baton.activities.providers import WorkerProviders
from baton.activities.providers.base import ModelProvider, StreamingModelProvider
from baton.activities.streaming import TextFeed
from baton.core.errors import CircuitOpen, PayloadStoreError
from baton.core.model_io import (
    BreakerState,
    ConversationRef,
    Message,
    ModelRequest,
    ModelResponse,
    assistant_turn,
)
from baton.telemetry.metrics import metered_model_call
from baton.telemetry.observability import model_call_span


class ModelCalls:
    """The model activity, the breakers it shares across runs and the providers it may
    call (one of each per worker)."""

    def __init__(self, breakers: BreakerBoard | None = None,
                 providers: WorkerProviders | None = None) -> None:
        self.breakers = breakers or BreakerBoard()
        self.providers = providers or WorkerProviders()
        # Read once, so a worker with an unusable value refuses to start.
        self.conversation_offload_bytes = offload_bytes()
        self.recent_conversations = recent_conversations()

    @activity.defn(name="call_model")
    @metered_model_call
    async def call_model(self, request: ModelRequest) -> ModelResponse:
        # Before anything else, so a provider this worker does not declare costs no
        # request, opens no breaker and reaches no metric label.
        adapter = self.providers.adapter_for(request)
        sent = request
        if request.prefix is not None:
            request = request.model_copy(update={
                "messages": await full_messages(request, self.recent_conversations),
                "prefix": None})
        breaker = self.breakers.for_model(request.model, request.breaker)
        api = self.providers.kind_of(request.provider)
        with model_call_span(request, breaker, api) as span:
            try:
                breaker.before_call()
            except CircuitOpenError as err:
                raise CircuitOpen(str(err)) from None
            try:
                response = await heartbeating(answer(adapter, request))
            except ApplicationError as err:
                if not err.non_retryable:
                    breaker.record_failure()
                raise
            except BaseException:
                # Timeouts (cancellation on a missed heartbeat or start-to-close) and
                # anything unexpected count against the model too.
                breaker.record_failure()
                raise
            breaker.record_success()
            span.response(response)
        # Every attempt was a call to the provider; the run's call budget counts them all.
        attempts = activity.info().attempt
        update: dict[str, object] = {
            "usage": response.usage.model_copy(update={"calls": attempts})}
        if response.tool_calls:  # the agent will call again with this and the results
            update["conversation"] = await self._stored(sent, request.messages, response)
        return response.model_copy(update=update)

    async def _stored(self, sent: ModelRequest, conversation: list[Message],
                      response: ModelResponse) -> ConversationRef | None:
        """The conversation stored for the agent's next call; None (it will carry the
        whole conversation) when the store fails: the model's answer, already paid
        for, is not thrown away for it."""
        try:
            return await store_conversation(sent, conversation,
                                            assistant_turn(sent.agent, response),
                                            self.conversation_offload_bytes,
                                            self.recent_conversations)
        except PayloadStoreError as err:
            activity.logger.warning("conversation of %s not stored, the next call carries "
                                    "it whole: %s", sent.agent, err.message)
            return None

    @activity.defn(name="breaker_states")
    async def breaker_states(self) -> list[BreakerState]:
        return self.breakers.states()


async def answer(adapter: ModelProvider, request: ModelRequest) -> ModelResponse:
    """The adapter's answer; streamed to the run's feed when the run streams."""
    if request.stream is None:
        return await adapter.complete(request)
    async with TextFeed(request, request.stream) as feed:
        if isinstance(adapter, StreamingModelProvider):
            response = await adapter.stream(request, feed.text)
        else:
            response = await adapter.complete(request)
        feed.finish(response)
    return response
