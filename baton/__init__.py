"""Baton: durable multi-agent LLM orchestration on Temporal.

The public API (`baton.Agent`, `baton.tool`, the teams, `baton.run`/`start`,
`baton.worker`) is loaded on first use: Temporal's sandbox re-imports this package
for every workflow run, and the workflows need only its pure data modules.

    import baton

    @baton.tool
    def lookup_order(order_id: str) -> dict: ...

    support = baton.Agent("support", "Answer order questions.", tools=[lookup_order])
    async with baton.worker(support):
        outcome = await baton.run(support, "Where is order A-1001?")
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Agent": "baton.api", "Triage": "baton.api", "FanOut": "baton.api",
    "Coordinator": "baton.api", "Map": "baton.api", "Supervisor": "baton.api",
    "Pipeline": "baton.api", "Stage": "baton.api", "Team": "baton.api",
    "RunOutcome": "baton.api", "RunHandle": "baton.api",
    "run": "baton.api", "start": "baton.api", "worker": "baton.api",
    "approve": "baton.approvals", "reject": "baton.approvals", "pending": "baton.approvals",
    "guardrail": "baton.guardrails", "Guardrail": "baton.guardrails",
    "GuardrailVerdict": "baton.contracts", "GuardrailTripped": "baton.errors",
    "tool": "baton.tools", "Tool": "baton.tools", "ToolContext": "baton.tools",
    "ToolDefinitionError": "baton.tools",
    "Budget": "baton.usage", "Usage": "baton.usage", "Message": "baton.model_io",
    "RetrySpec": "baton.specs", "Catalogue": "baton.specs",
    "load_catalogue": "baton.catalogue", "RunResult": "baton.runs",
    "BatonError": "baton.errors", "AgentFailed": "baton.errors",
    "ContractViolation": "baton.errors", "BudgetExhausted": "baton.errors",
    "ToolUnavailable": "baton.errors", "ToolFailed": "baton.errors",
    "PlanFailed": "baton.errors", "FanOutPolicyNotMet": "baton.errors",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from baton.api import (
        Agent,
        Coordinator,
        FanOut,
        Map,
        Pipeline,
        RunHandle,
        RunOutcome,
        Stage,
        Supervisor,
        Team,
        Triage,
        run,
        start,
        worker,
    )
    from baton.approvals import approve, pending, reject
    from baton.catalogue import load_catalogue
    from baton.contracts import GuardrailVerdict
    from baton.errors import (
        AgentFailed,
        BatonError,
        BudgetExhausted,
        ContractViolation,
        FanOutPolicyNotMet,
        GuardrailTripped,
        PlanFailed,
        ToolFailed,
        ToolUnavailable,
    )
    from baton.guardrails import Guardrail, guardrail
    from baton.model_io import Message
    from baton.runs import RunResult
    from baton.specs import Catalogue, RetrySpec
    from baton.tools import Tool, ToolContext, ToolDefinitionError, tool
    from baton.usage import Budget, Usage


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'baton' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
