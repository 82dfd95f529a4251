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
    "GuardrailVerdict": "baton.core.contracts", "Subtask": "baton.core.contracts",
    "HandoffLimitReached": "baton.core.errors", "GuardrailTripped": "baton.core.errors",
    "BatonError": "baton.core.errors", "AgentFailed": "baton.core.errors",
    "ContractViolation": "baton.core.errors", "BudgetExhausted": "baton.core.errors",
    "ToolUnavailable": "baton.core.errors", "ToolFailed": "baton.core.errors",
    "PlanFailed": "baton.core.errors", "FanOutPolicyNotMet": "baton.core.errors",
    "FlowFailed": "baton.core.errors", "ApprovalMissing": "baton.core.errors",
    "MCPUnavailable": "baton.core.errors", "HookFailed": "baton.core.errors",
    "UnknownHook": "baton.core.errors",
    "guardrail": "baton.core.guardrails", "Guardrail": "baton.core.guardrails",
    "nest_history": "baton.core.handoffs",
    "MCPServer": "baton.core.mcp",
    "Message": "baton.core.model_io",
    "RunResult": "baton.core.runs", "TriageResult": "baton.core.runs",
    "FanOutResult": "baton.core.runs", "SupervisorResult": "baton.core.runs",
    "PipelineResult": "baton.core.runs",
    "RetrySpec": "baton.core.specs", "Catalogue": "baton.core.specs",
    "Finding": "baton.core.team_hooks", "StageContext": "baton.core.team_hooks",
    "tool": "baton.core.tools", "Tool": "baton.core.tools", "ToolContext": "baton.core.tools",
    "ToolDefinitionError": "baton.core.tools",
    "Budget": "baton.core.usage", "Usage": "baton.core.usage",
    "Agent": "baton.define.api", "Triage": "baton.define.api", "FanOut": "baton.define.api",
    "Coordinator": "baton.define.api", "Map": "baton.define.api", "Supervisor": "baton.define.api",
    "Pipeline": "baton.define.api", "Stage": "baton.define.api", "Team": "baton.define.api",
    "handoff": "baton.define.api", "Handoff": "baton.define.api",
    "load_catalogue": "baton.define.catalogue",
    "flow": "baton.define.flows", "Flow": "baton.define.flows", "FlowResult": "baton.define.flows",
    "AgentResult": "baton.define.flows", "FlowDefinitionError": "baton.define.flows",
    "gather": "baton.define.flows", "approval": "baton.define.flows",
    "sleep": "baton.define.flows", "now": "baton.define.flows",
    "BranchFailure": "baton.define.flows", "BranchesFailed": "baton.define.flows",
    "approve": "baton.runtime.approvals", "reject": "baton.runtime.approvals",
    "pending": "baton.runtime.approvals",
    "RunOutcome": "baton.runtime.client", "RunHandle": "baton.runtime.client",
    "run": "baton.runtime.client", "start": "baton.runtime.client",
    "worker": "baton.runtime.client",
    "BatonPlugin": "baton.runtime.plugin",
    "send_turn": "baton.runtime.sessions", "end_session": "baton.runtime.sessions",
    "stream": "baton.runtime.streaming", "StreamEvent": "baton.runtime.streaming",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from baton.core.contracts import GuardrailVerdict as GuardrailVerdict
    from baton.core.contracts import Subtask as Subtask
    from baton.core.errors import (
        AgentFailed as AgentFailed,
    )
    from baton.core.errors import ApprovalMissing as ApprovalMissing
    from baton.core.errors import (
        BatonError as BatonError,
    )
    from baton.core.errors import (
        BudgetExhausted as BudgetExhausted,
    )
    from baton.core.errors import (
        ContractViolation as ContractViolation,
    )
    from baton.core.errors import (
        FanOutPolicyNotMet as FanOutPolicyNotMet,
    )
    from baton.core.errors import FlowFailed as FlowFailed
    from baton.core.errors import (
        GuardrailTripped as GuardrailTripped,
    )
    from baton.core.errors import HandoffLimitReached as HandoffLimitReached
    from baton.core.errors import HookFailed as HookFailed
    from baton.core.errors import MCPUnavailable as MCPUnavailable
    from baton.core.errors import (
        PlanFailed as PlanFailed,
    )
    from baton.core.errors import (
        ToolFailed as ToolFailed,
    )
    from baton.core.errors import (
        ToolUnavailable as ToolUnavailable,
    )
    from baton.core.errors import UnknownHook as UnknownHook
    from baton.core.guardrails import Guardrail as Guardrail
    from baton.core.guardrails import guardrail as guardrail
    from baton.core.handoffs import nest_history as nest_history
    from baton.core.mcp import MCPServer as MCPServer
    from baton.core.model_io import Message as Message
    from baton.core.runs import (
        FanOutResult as FanOutResult,
    )
    from baton.core.runs import (
        PipelineResult as PipelineResult,
    )
    from baton.core.runs import (
        RunResult as RunResult,
    )
    from baton.core.runs import (
        SupervisorResult as SupervisorResult,
    )
    from baton.core.runs import (
        TriageResult as TriageResult,
    )
    from baton.core.specs import Catalogue as Catalogue
    from baton.core.specs import RetrySpec as RetrySpec
    from baton.core.team_hooks import Finding as Finding
    from baton.core.team_hooks import StageContext as StageContext
    from baton.core.tools import (
        Tool as Tool,
    )
    from baton.core.tools import (
        ToolContext as ToolContext,
    )
    from baton.core.tools import (
        ToolDefinitionError as ToolDefinitionError,
    )
    from baton.core.tools import (
        tool as tool,
    )
    from baton.core.usage import Budget as Budget
    from baton.core.usage import Usage as Usage
    from baton.define.api import (
        Agent as Agent,
    )
    from baton.define.api import (
        Coordinator as Coordinator,
    )
    from baton.define.api import (
        FanOut as FanOut,
    )
    from baton.define.api import (
        Handoff as Handoff,
    )
    from baton.define.api import (
        Map as Map,
    )
    from baton.define.api import (
        Pipeline as Pipeline,
    )
    from baton.define.api import (
        Stage as Stage,
    )
    from baton.define.api import (
        Supervisor as Supervisor,
    )
    from baton.define.api import (
        Team as Team,
    )
    from baton.define.api import (
        Triage as Triage,
    )
    from baton.define.api import handoff as handoff
    from baton.define.catalogue import load_catalogue as load_catalogue
    from baton.define.flows import AgentResult as AgentResult
    from baton.define.flows import BranchesFailed as BranchesFailed
    from baton.define.flows import BranchFailure as BranchFailure
    from baton.define.flows import Flow as Flow
    from baton.define.flows import FlowDefinitionError as FlowDefinitionError
    from baton.define.flows import FlowResult as FlowResult
    from baton.define.flows import approval as approval
    from baton.define.flows import flow as flow
    from baton.define.flows import gather as gather
    from baton.define.flows import now as now
    from baton.define.flows import sleep as sleep
    from baton.runtime.approvals import approve as approve
    from baton.runtime.approvals import pending as pending
    from baton.runtime.approvals import reject as reject
    from baton.runtime.client import RunHandle as RunHandle
    from baton.runtime.client import RunOutcome as RunOutcome
    from baton.runtime.client import run as run
    from baton.runtime.client import start as start
    from baton.runtime.client import worker as worker
    from baton.runtime.sessions import end_session as end_session
    from baton.runtime.sessions import send_turn as send_turn
    from baton.runtime.streaming import StreamEvent as StreamEvent
    from baton.runtime.streaming import stream as stream


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        try:  # a submodule, e.g. baton.core.guardrails.pii or baton.runtime.watch.events
            return import_module(f"baton.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module 'baton' has no attribute {name!r}") from None
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
