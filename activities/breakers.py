"""Circuit breakers, one per `provider:model`, shared by every run on a worker.

closed -> open after `failures` provider failures within `window_s`; open fails
calls at once (no provider call) until `cooldown_s` has passed; then half-open lets
one probe through: success closes the circuit, failure opens it again.

Kept in the worker's memory rather than in a Temporal entity workflow per model:
the check sits on every model call, and a round trip to the server for it would
add latency and server load to exactly the moments a provider is struggling. Each
worker therefore learns about an outage on its own (after `failures` calls), which
bounds the cost of not sharing: a few failed calls per worker per outage.

The breakers' states reach Prometheus through baton/telemetry/metrics.py (`BreakerGauge`),
which reads `BreakerBoard.states()` after each call and again when a cool-down ends:
`state` is computed from the clock, so an open breaker reads half-open as soon as its
cool-down has passed, whether or not a call has come since.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from baton.core.model_io import BreakerPolicy, BreakerState
from baton.telemetry.metrics import labels
from baton.telemetry.redaction import content_recorded

logger = logging.getLogger("baton.breakers")


class CircuitOpenError(Exception):
    """The model's circuit is open: the call was not made."""


class CircuitBreaker:
    def __init__(self, model: str, policy: BreakerPolicy,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.model = model
        self.policy = policy
        self._clock = clock
        self._failures: deque[float] = deque()
        self._state = "closed"
        self._opened_at = 0.0
        self._probing = False
        self._probe_started = 0.0
        self.transitions = 0

    @property
    def state(self) -> str:
        if self._state == "open" and self._clock() - self._opened_at >= self.policy.cooldown_s:
            return "half_open"
        return self._state

    def before_call(self) -> None:
        """Raise CircuitOpenError unless a call may go to the provider now."""
        state = self.state
        if state == "closed":
            return
        now = self._clock()
        # One probe at a time; a probe lost with its worker frees the slot after a cooldown.
        stale_probe = self._probing and now - self._probe_started >= self.policy.cooldown_s
        if state == "half_open" and (not self._probing or stale_probe):
            self._move("half_open")
            self._probing = True
            self._probe_started = now
            return
        wait = self.policy.cooldown_s - (now - self._opened_at)
        raise CircuitOpenError(
            f"circuit for {self.model} is {state.replace('_', '-')} after "
            f"{len(self._failures)} failures; "
            + (f"next probe in {wait:.0f} s" if wait > 0 else "a probe is in flight"))

    def record_success(self) -> None:
        self._probing = False
        self._failures.clear()
        if self._state != "closed":
            self._move("closed")

    def record_failure(self) -> None:
        now = self._clock()
        if self._probing or self._state != "closed":
            self._probing = False
            self._opened_at = now
            self._move("open")
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.policy.window_s:
            self._failures.popleft()
        if len(self._failures) >= self.policy.failures:
            self._opened_at = now
            self._move("open")

    def snapshot(self) -> BreakerState:
        state = self.state
        opened = self._clock() - self._opened_at if state != "closed" else None
        return BreakerState(model=self.model, state=state,
                            recent_failures=len(self._failures), policy=self.policy,
                            opened_for_s=opened, transitions=self.transitions)

    def _logged_model(self) -> str:
        # A run may name any model (a --model override is the client's text): only
        # the worker's own are logged by name unless content is recorded.
        if content_recorded() or labels.knows("model", self.model):
            return self.model
        return "(a model this worker does not list)"

    def _move(self, state: str) -> None:
        if state != self._state:
            self.transitions += 1
            logger.warning("circuit %s: %s -> %s", self._logged_model(), self._state, state)
        self._state = state


class BreakerBoard:
    """Every breaker of one worker, created on first use with the caller's policy."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def for_model(self, model: str, policy: BreakerPolicy) -> CircuitBreaker:
        breaker = self._breakers.get(model)
        if breaker is None:
            breaker = self._breakers[model] = CircuitBreaker(model, policy, self._clock)
        breaker.policy = policy  # the latest run's catalogue wins
        return breaker

    def states(self) -> list[BreakerState]:
        return [b.snapshot() for _, b in sorted(self._breakers.items())]
