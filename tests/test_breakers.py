"""Circuit breakers (activities/breakers.py) and how runs use them (fail fast, fall back)."""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from baton.activities.breakers import BreakerBoard, CircuitBreaker, CircuitOpenError
from baton.core.model_io import BreakerPolicy, BreakerState, Chaos
from baton.core.runs import TriageResult
from tests.helpers import fast_catalogue, run, worker

POLICY = BreakerPolicy(failures=3, window_s=10, cooldown_s=5)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker() -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    return CircuitBreaker("p:m", POLICY, clock), clock


def test_opens_after_failures_within_the_window() -> None:
    b, clock = breaker()
    for _ in range(2):
        b.before_call()
        b.record_failure()
    clock.now += 11  # the first two fall out of the window
    b.record_failure()
    assert b.state == "closed"
    b.record_failure()
    b.record_failure()
    assert b.state == "open"
    with pytest.raises(CircuitOpenError, match=r"circuit for p:m is open .*next probe in 5 s"):
        b.before_call()


def test_half_open_probe_closes_on_success() -> None:
    b, clock = breaker()
    for _ in range(3):
        b.record_failure()
    clock.now += 5
    assert b.state == "half_open"
    b.before_call()  # the probe goes through
    with pytest.raises(CircuitOpenError, match="a probe is in flight"):
        b.before_call()  # only one at a time
    b.record_success()
    assert b.state == "closed"
    b.before_call()
    assert b.snapshot().transitions == 3  # open, half-open, closed


def test_failed_probe_opens_again() -> None:
    b, clock = breaker()
    for _ in range(3):
        b.record_failure()
    clock.now += 5
    b.before_call()
    b.record_failure()
    assert b.state == "open"
    clock.now += 4.9
    with pytest.raises(CircuitOpenError):
        b.before_call()


def test_a_lost_probe_frees_its_slot_after_a_cooldown() -> None:
    b, clock = breaker()
    for _ in range(3):
        b.record_failure()
    clock.now += 5
    b.before_call()  # this probe's worker dies: no outcome is ever recorded
    clock.now += 5
    b.before_call()  # a new probe is allowed


def test_board_keeps_one_breaker_per_model() -> None:
    board = BreakerBoard(Clock())
    a = board.for_model("p:a", POLICY)
    assert board.for_model("p:a", BreakerPolicy()) is a
    board.for_model("p:b", POLICY).record_failure()
    assert [(s.model, s.state, s.recent_failures) for s in board.states()] == [
        ("p:a", "closed", 0), ("p:b", "closed", 1)]


async def test_open_breaker_fails_fast_and_the_agent_falls_back(env: WorkflowEnvironment,
                                                                task_queue: str) -> None:
    cat = fast_catalogue(billing={"fallback_models": ["offline:backup"]})
    cat.breakers["offline:standard"] = BreakerPolicy(failures=2, window_s=60, cooldown_s=600)
    outage = Chaos(failure_rate=1.0, models=["offline:standard"])
    async with worker(env.client, task_queue):
        first = await run(env.client, task_queue, "support_desk", "Refund my invoice", cat=cat,
                          chaos=outage, result_type=TriageResult)
        second = await run(env.client, task_queue, "support_desk", "Refund my invoice",
                           cat=cat, chaos=outage, result_type=TriageResult)
        states = await env.client.execute_workflow(
            "BreakerReportWorkflow", id=f"breakers-{task_queue}", task_queue=task_queue,
            result_type=list[BreakerState])
    # first run: two failed attempts open the circuit, then the fallback model answers
    assert first.handled_by == "billing" and first.status == "degraded"
    errors = [s.detail for s in first.trace if s.kind == "error"]
    assert len(errors) == 1 and "ModelUnavailable" in errors[0]
    assert any("answered on fallback offline:backup" in r for r in first.reasons)
    # second run: the open circuit fails at once, without calling the provider
    errors = [s.detail for s in second.trace if s.kind == "error"]
    assert len(errors) == 1 and "CircuitOpen: circuit for offline:standard is open" in errors[0]
    assert second.answer.startswith("[offline backup")
    by_model = {s.model: s for s in states}
    assert by_model["offline:standard"].state == "open"
    assert by_model["offline:fast"].state == "closed"  # the router was never affected
