"""Baton: durable multi-agent LLM orchestration on Temporal.

The public API, from every layer: what you write (`baton.Agent`, `baton.tool`, the
teams, `@baton.flow`), what runs come back as, and the runtime (`baton.run`/`start`,
`baton.worker`, `baton.BatonPlugin`, `baton.BatonClient`). Workflows never re-import
it: Baton's workers pass `baton` through Temporal's sandbox.

    import baton

    @baton.tool
    def lookup_order(order_id: str) -> dict: ...

    support = baton.Agent("support", "Answer order questions.", tools=[lookup_order])
    async with baton.worker(support):
        outcome = await baton.run(support, "Where is order A-1001?")
"""

from __future__ import annotations

from temporalio import workflow

# Inside Temporal's sandbox these are the worker's own modules, passed through as
# Baton's workflow modules import them: a registry such as the flows' would otherwise
# be a second, empty copy.
with workflow.unsafe.imports_passed_through():
    from baton.core.contracts import GuardrailVerdict, Subtask
    from baton.core.errors import (
        AgentFailed,
        ApprovalMissing,
        BatonError,
        BudgetExhausted,
        ContractViolation,
        FanOutPolicyNotMet,
        FlowFailed,
        GuardrailTripped,
        HandoffLimitReached,
        HookFailed,
        MCPUnavailable,
        PlanFailed,
        ToolFailed,
        ToolUnavailable,
        UnknownHook,
    )
    from baton.core.guardrails import Guardrail, guardrail
    from baton.core.handoffs import nest_history
    from baton.core.mcp import MCPServer
    from baton.core.model_io import Message
    from baton.core.runs import (
        FanOutResult,
        PipelineResult,
        RunResult,
        SupervisorResult,
        TriageResult,
    )
    from baton.core.specs import Catalogue, RetrySpec
    from baton.core.team_hooks import Finding, StageContext
    from baton.core.tools import Tool, ToolContext, ToolDefinitionError, tool
    from baton.core.usage import Budget, Usage
    from baton.define.api import (
        Agent,
        Coordinator,
        FanOut,
        Handoff,
        Map,
        Pipeline,
        Stage,
        Supervisor,
        Team,
        Triage,
        handoff,
    )
    from baton.define.catalogue import load_catalogue
    from baton.define.flows import (
        AgentResult,
        BranchesFailed,
        BranchFailure,
        Flow,
        FlowDefinitionError,
        FlowResult,
        approval,
        flow,
        gather,
        now,
        sleep,
    )

# Workflow code never uses the runtime (clients, workers, the plugin), and a worker
# that checks Baton's workflows in Temporal's sandbox (BATON_SANDBOX=1, the tests)
# re-imports this package for every run: there, only what workflows may use loads.
if not workflow.unsafe.in_sandbox():
    from baton.runtime.approvals import approve, pending, reject
    from baton.runtime.client import BatonClient, RunHandle, RunOutcome, run, start, worker
    from baton.runtime.plugin import BatonPlugin
    from baton.runtime.sessions import end_session, send_turn
    from baton.runtime.streaming import StreamEvent, stream

__all__ = [
    "Agent", "AgentFailed", "AgentResult", "ApprovalMissing", "BatonClient", "BatonError",
    "BatonPlugin", "BranchFailure", "BranchesFailed", "Budget", "BudgetExhausted",
    "Catalogue", "ContractViolation", "Coordinator", "FanOut", "FanOutPolicyNotMet",
    "FanOutResult", "Finding", "Flow", "FlowDefinitionError", "FlowFailed", "FlowResult",
    "Guardrail", "GuardrailTripped", "GuardrailVerdict", "Handoff", "HandoffLimitReached",
    "HookFailed", "MCPServer", "MCPUnavailable", "Map", "Message", "Pipeline",
    "PipelineResult", "PlanFailed", "RetrySpec", "RunHandle", "RunOutcome", "RunResult",
    "Stage", "StageContext", "StreamEvent", "Subtask", "Supervisor", "SupervisorResult",
    "Team", "Tool", "ToolContext", "ToolDefinitionError", "ToolFailed", "ToolUnavailable",
    "Triage", "TriageResult", "UnknownHook", "Usage", "approval", "approve", "end_session",
    "flow", "gather", "guardrail", "handoff", "load_catalogue", "nest_history", "now",
    "pending", "reject", "run", "send_turn", "sleep", "start", "stream", "tool", "worker",
]
