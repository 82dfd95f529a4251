"""The one activity that calls a model.

`ModelCalls.call_model` checks the model's circuit breaker, picks the adapter for
the request's provider and awaits it while heartbeating, so a worker that dies
mid-call is noticed within the heartbeat timeout rather than after the whole
start-to-close timeout. Provider failures that retrying could fix count against the
breaker; an open breaker fails the call at once with a non-retryable `CircuitOpen`,
which sends the agent to its fallback model.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from baton.activities.breakers import BreakerBoard, CircuitOpenError
from baton.activities.heartbeat import heartbeating
from baton.activities.providers import provider_for
from baton.errors import CircuitOpen
from baton.metrics import metered_model_call
from baton.model_io import BreakerState, ModelRequest, ModelResponse
from baton.observability import model_call_span


class ModelCalls:
    """The model activity and the breakers it shares across runs (one per worker)."""

    def __init__(self, breakers: BreakerBoard | None = None) -> None:
        self.breakers = breakers or BreakerBoard()

    @activity.defn(name="call_model")
    @metered_model_call
    async def call_model(self, request: ModelRequest) -> ModelResponse:
        breaker = self.breakers.for_model(request.model, request.breaker)
        with model_call_span(request, breaker) as span:
            try:
                breaker.before_call()
            except CircuitOpenError as err:
                raise CircuitOpen(str(err)) from None
            try:
                response = await heartbeating(provider_for(request).complete(request))
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
        return response.model_copy(update={
            "usage": response.usage.model_copy(update={"calls": attempts})})

    @activity.defn(name="breaker_states")
    async def breaker_states(self) -> list[BreakerState]:
        return self.breakers.states()
