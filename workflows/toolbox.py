"""The tools one agent is offered in one run (`Toolbox`), and what every kind of tool
call shares: its retry policy and overall time bound, and how an activity's failure
reads in one line.

Below workflows/agent_call.py (`run_agent`) and workflows/mcp.py (MCP tools), which
both build toolboxes; the results of a call are recorded by agent_call's
`tool_result`/`tool_failure`, handed to MCP handlers as `ToolRecords`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from baton.core.model_io import ToolCall, ToolSpec
    from baton.core.specs import AgentSpec
    from baton.core.tools import ToolOutcome

from baton.workflows.ledger import RunLedger

# Runs one tool call inside the workflow and returns the text the model reads.
ToolHandler = Callable[[ToolCall], Awaitable[str]]


@dataclass
class Toolbox:
    """The tools one agent is offered in one run, and how each call is carried out."""

    specs: list[ToolSpec]
    handlers: dict[str, ToolHandler]
    max_turns: int
    # Said in the run's reasons when the model still wanted tools at the bound.
    limit_reason: str = "tool turn limit {max_turns} reached; answered without tools"
    on_turn: Callable[[int], None] | None = None

    async def run(self, calls: Sequence[ToolCall]) -> list[str]:
        """Every call of one model turn, concurrently; unknown tools answer with an error."""

        async def one(call: ToolCall) -> str:
            handler = self.handlers.get(call.name)
            if handler is None:
                return (f"Error: there is no tool named {call.name!r}; available tools: "
                        f"{', '.join(self.handlers)}")
            return await handler(call)

        return list(await asyncio.gather(*(one(c) for c in calls)))

    def ends_turn(self) -> bool:
        """Whether the calls just run ended the agent's turn (a handoff: the model is
        not asked again; workflows/handoffs.py)."""
        return False


# For a call that must not offer the agent's own tools (e.g. a supervisor's review).
NO_TOOLS = Toolbox(specs=[], handlers={}, max_turns=0)


class ToolRecords(Protocol):
    """How a tool call's outcome becomes what the model reads, recorded in the trace and
    screened by the agent's tool-output guardrails (workflows/agent_call.py)."""

    async def result(self, ledger: RunLedger, agent: AgentSpec, name: str, arguments: str,
                     outcome: ToolOutcome) -> str: ...

    async def failure(self, ledger: RunLedger, agent: AgentSpec, name: str, arguments: str,
                      reason: str, on_failure: str) -> str: ...


def retry_policy(attempts: int, initial_s: float, backoff: float, max_s: float,
                 non_retryable: Sequence[str] = ()) -> RetryPolicy:
    return RetryPolicy(maximum_attempts=attempts, initial_interval=timedelta(seconds=initial_s),
                       backoff_coefficient=backoff, maximum_interval=timedelta(seconds=max_s),
                       non_retryable_error_types=list(non_retryable) or None)


def schedule_to_close(timeout_s: float, attempts: int, max_interval_s: float,
                       budget_seconds: float | None) -> timedelta:
    """Upper bound on one call including every retry and the waits between them; no
    call, retries included, may outlive the run's deadline."""
    bound = timeout_s * attempts + max_interval_s * (attempts - 1) + 5
    if budget_seconds is not None:
        bound = min(bound, budget_seconds)
    return timedelta(seconds=bound)


def describe(err: ActivityError) -> str:
    """An activity's failure in one line: its type and message."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type or 'error'}: {cause.message}"
    return str(cause or err)
