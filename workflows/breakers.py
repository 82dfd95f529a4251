"""Reading a worker's circuit breakers through Temporal (`starter.py breakers`)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from baton.core.model_io import BreakerState


@workflow.defn
class BreakerReportWorkflow:
    """Asks a worker on the task queue for its breakers' states (one activity)."""

    @workflow.run
    async def run(self) -> list[BreakerState]:
        states: list[BreakerState] = await workflow.execute_activity(
            "breaker_states", result_type=list[BreakerState],
            start_to_close_timeout=timedelta(seconds=10),
            schedule_to_close_timeout=timedelta(seconds=30),
            summary="breaker states of the worker that answered")
        return states
