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
    "handoff": "baton.api", "Handoff": "baton.api", "nest_history": "baton.handoffs",
    "HandoffLimitReached": "baton.errors",
    "RunOutcome": "baton.api", "RunHandle": "baton.api",
    "run": "baton.api", "start": "baton.api", "worker": "baton.api",
    "approve": "baton.approvals", "reject": "baton.approvals", "pending": "baton.approvals",
    "send_turn": "baton.sessions", "end_session": "baton.sessions",
    "guardrail": "baton.guardrails", "Guardrail": "baton.guardrails",
    "GuardrailVerdict": "baton.contracts", "GuardrailTripped": "baton.errors",
    "tool": "baton.tools", "Tool": "baton.tools", "ToolContext": "baton.tools",
    "ToolDefinitionError": "baton.tools",
    "Budget": "baton.usage", "Usage": "baton.usage", "Message": "baton.model_io",
    "RetrySpec": "baton.specs", "Catalogue": "baton.specs",
    "load_catalogue": "baton.catalogue", "RunResult": "baton.runs",
    "TriageResult": "baton.runs", "FanOutResult": "baton.runs",
    "SupervisorResult": "baton.runs", "PipelineResult": "baton.runs",
    "BatonError": "baton.errors", "AgentFailed": "baton.errors",
    "ContractViolation": "baton.errors", "BudgetExhausted": "baton.errors",
    "ToolUnavailable": "baton.errors", "ToolFailed": "baton.errors",
    "PlanFailed": "baton.errors", "FanOutPolicyNotMet": "baton.errors",
    "FlowFailed": "baton.errors", "ApprovalMissing": "baton.errors",
    "flow": "baton.flows", "Flow": "baton.flows", "FlowResult": "baton.flows",
    "AgentResult": "baton.flows", "FlowDefinitionError": "baton.flows",
    "gather": "baton.flows", "approval": "baton.flows", "sleep": "baton.flows",
    "now": "baton.flows", "BranchFailure": "baton.flows", "BranchesFailed": "baton.flows",
    "BatonPlugin": "baton.plugin",
    "MCPServer": "baton.mcp", "MCPUnavailable": "baton.errors",
    "stream": "baton.streaming", "StreamEvent": "baton.streaming",
    "Finding": "baton.team_hooks", "StageContext": "baton.team_hooks",
    "Subtask": "baton.contracts", "HookFailed": "baton.errors", "UnknownHook": "baton.errors",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from baton.api import (
        Agent as Agent,
    )
    from baton.api import (
        Coordinator as Coordinator,
    )
    from baton.api import (
        FanOut as FanOut,
    )
    from baton.api import (
        Handoff as Handoff,
    )
    from baton.api import (
        Map as Map,
    )
    from baton.api import (
        Pipeline as Pipeline,
    )
    from baton.api import (
        RunHandle as RunHandle,
    )
    from baton.api import (
        RunOutcome as RunOutcome,
    )
    from baton.api import (
        Stage as Stage,
    )
    from baton.api import (
        Supervisor as Supervisor,
    )
    from baton.api import (
        Team as Team,
    )
    from baton.api import (
        Triage as Triage,
    )
    from baton.api import handoff as handoff
    from baton.api import (
        run as run,
    )
    from baton.api import (
        start as start,
    )
    from baton.api import (
        worker as worker,
    )
    from baton.approvals import approve as approve
    from baton.approvals import pending as pending
    from baton.approvals import reject as reject
    from baton.catalogue import load_catalogue as load_catalogue
    from baton.contracts import GuardrailVerdict as GuardrailVerdict
    from baton.contracts import Subtask as Subtask
    from baton.errors import (
        AgentFailed as AgentFailed,
    )
    from baton.errors import ApprovalMissing as ApprovalMissing
    from baton.errors import (
        BatonError as BatonError,
    )
    from baton.errors import (
        BudgetExhausted as BudgetExhausted,
    )
    from baton.errors import (
        ContractViolation as ContractViolation,
    )
    from baton.errors import (
        FanOutPolicyNotMet as FanOutPolicyNotMet,
    )
    from baton.errors import FlowFailed as FlowFailed
    from baton.errors import (
        GuardrailTripped as GuardrailTripped,
    )
    from baton.errors import HandoffLimitReached as HandoffLimitReached
    from baton.errors import HookFailed as HookFailed
    from baton.errors import MCPUnavailable as MCPUnavailable
    from baton.errors import (
        PlanFailed as PlanFailed,
    )
    from baton.errors import (
        ToolFailed as ToolFailed,
    )
    from baton.errors import (
        ToolUnavailable as ToolUnavailable,
    )
    from baton.errors import UnknownHook as UnknownHook
    from baton.flows import AgentResult as AgentResult
    from baton.flows import BranchesFailed as BranchesFailed
    from baton.flows import BranchFailure as BranchFailure
    from baton.flows import Flow as Flow
    from baton.flows import FlowDefinitionError as FlowDefinitionError
    from baton.flows import FlowResult as FlowResult
    from baton.flows import approval as approval
    from baton.flows import flow as flow
    from baton.flows import gather as gather
    from baton.flows import now as now
    from baton.flows import sleep as sleep
    from baton.guardrails import Guardrail as Guardrail
    from baton.guardrails import guardrail as guardrail
    from baton.handoffs import nest_history as nest_history
    from baton.mcp import MCPServer as MCPServer
    from baton.model_io import Message as Message
    from baton.runs import (
        FanOutResult as FanOutResult,
    )
    from baton.runs import (
        PipelineResult as PipelineResult,
    )
    from baton.runs import (
        RunResult as RunResult,
    )
    from baton.runs import (
        SupervisorResult as SupervisorResult,
    )
    from baton.runs import (
        TriageResult as TriageResult,
    )
    from baton.sessions import end_session as end_session
    from baton.sessions import send_turn as send_turn
    from baton.specs import Catalogue as Catalogue
    from baton.specs import RetrySpec as RetrySpec
    from baton.streaming import StreamEvent as StreamEvent
    from baton.streaming import stream as stream
    from baton.team_hooks import Finding as Finding
    from baton.team_hooks import StageContext as StageContext
    from baton.tools import (
        Tool as Tool,
    )
    from baton.tools import (
        ToolContext as ToolContext,
    )
    from baton.tools import (
        ToolDefinitionError as ToolDefinitionError,
    )
    from baton.tools import (
        tool as tool,
    )
    from baton.usage import Budget as Budget
    from baton.usage import Usage as Usage


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        try:  # a submodule, e.g. baton.guardrails.pii or baton.watch.events
            return import_module(f"baton.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module 'baton' has no attribute {name!r}") from None
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
