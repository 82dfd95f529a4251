"""RunLedger: the per-run bookkeeping every pattern shares.

The ordered step trace, usage per agent (model calls and tool calls), the reasons
a run is degraded, partial answers for a run its budget stops, and readable ids
for child workflows. Budgets are checked against it before every model and tool
call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from baton.core.errors import BudgetExhausted
    from baton.core.mcp import MCPToolList
    from baton.core.runs import ApprovalRecord, RunInput, RunResult, Step, StepKind
    from baton.core.text import shorten
    from baton.core.usage import Budget, Usage
    from baton.telemetry.observability import record_step


# The longest workflow id Temporal accepts (its default limit.maxIDLength).
MAX_WORKFLOW_ID_BYTES = 1000


class RunLedger:
    """Trace, usage and child ids of one workflow run."""

    def __init__(self, run: RunInput) -> None:
        self.run = run
        self.trace: list[Step] = []
        self.usage: dict[str, Usage] = {}
        self.reasons: list[str] = []
        # (who, answer) of every agent or nested run that answered: the partial result.
        self.partials: list[tuple[str, str]] = []
        self.exhausted: str | None = None
        self.blocked: str | None = None  # which guardrail stopped the run, and why
        self.approvals: list[ApprovalRecord] = []
        self._calls: dict[str, int] = {}
        self._children: dict[str, int] = {}
        # MCP tool lists this run fetched, by server, with when (workflows/mcp.py).
        self.mcp_tools: dict[str, tuple[datetime, MCPToolList]] = {}
        # Tools ("name@fingerprint") a live worker was found to serve (workflows/tool_calls.py).
        self.tools_served: set[str] = set()
        # Told of every step as it is recorded (live progress).
        self.on_step: Callable[[Step], None] | None = None

    def step(self, kind: StepKind, agent: str, detail: str, *, ok: bool = True,
             model: str | None = None, usage: Usage | None = None,
             error_type: str | None = None) -> None:
        step = Step(kind=kind, agent=agent, detail=detail, ok=ok, model=model,
                    path=self.run.path, usage=usage, error_type=error_type)
        self.trace.append(step)
        record_step(step)  # a span in the run's trace when the worker traces
        if self.on_step is not None:
            self.on_step(step)

    def degrade(self, reason: str) -> None:
        self.reasons.append(reason)

    def next_call_index(self, agent: str) -> int:
        index = self._calls.get(agent, 0)
        self._calls[agent] = index + 1
        return index

    def charge(self, agent: str, usage: Usage) -> None:
        self.usage[agent] = self.usage.get(agent, Usage()).plus(usage)

    @property
    def spent(self) -> Usage:
        return Usage.sum(self.usage.values())

    def elapsed_s(self) -> float:
        return (workflow.now() - workflow.info().start_time).total_seconds()

    def check_budget(self) -> Budget:
        """What remains of the run's budget; raises BudgetExhausted when nothing does."""
        budget = self.run.options.budget
        spent = self.spent
        elapsed = self.elapsed_s()
        if (limit := budget.exceeded_by(spent, elapsed)) is not None:
            raise BudgetExhausted(limit)
        return budget.remaining(spent, elapsed)

    def absorb(self, child: RunResult) -> None:
        """Fold a nested run's usage and trace into this run's."""
        for agent, usage in child.usage.items():
            self.charge(agent, usage)
        self.trace.extend(child.trace)
        self.reasons.extend(f"{child.member}: {r}" for r in child.reasons)
        self.approvals.extend(child.approvals)

    def child_id(self, member: str) -> str:
        count = self._children.get(member, 0) + 1
        self._children[member] = count
        suffix = "" if count == 1 else f"-{count}"
        wanted = f"{workflow.info().workflow_id}/{member}{suffix}"
        if len(wanted.encode()) <= MAX_WORKFLOW_ID_BYTES:
            return wanted
        # Temporal refuses the command, and the workflow task fails on every retry.
        # Deeply nested runs (or a long id given by the caller) keep the id's start
        # and a digest of the whole, still unique and the same on replay.
        digest = hashlib.sha256(wanted.encode()).hexdigest()[:16]
        start = wanted.encode()[:MAX_WORKFLOW_ID_BYTES - 17].decode(errors="ignore")
        return f"{start}~{digest}"

    @property
    def status(self) -> str:
        if self.blocked is not None:
            return "blocked"
        if self.exhausted is not None:
            return "budget_exhausted"
        return "degraded" if self.reasons else "ok"

    def result_fields(self) -> dict[str, Any]:
        return {"member": self.run.member, "usage": self.usage, "trace": self.trace,
                "reasons": self.reasons, "status": self.status, "approvals": self.approvals}

    def stopped_by_budget(self, err: BudgetExhausted) -> dict[str, Any]:
        """Result fields for a run its budget ended: the answers gathered so far."""
        self.exhausted = err.limit
        self.reasons.append(f"budget exhausted ({err.limit}); partial results")
        self.step("error", self.run.member, f"budget exhausted ({err.limit})", ok=False)
        done = "\n".join(f"- {who}: {shorten(answer, 300)}" for who, answer in self.partials)
        answer = (f"Budget exhausted ({err.limit}) before the run finished. "
                  f"Partial results:\n{done or '- none'}")
        return {"answer": answer, **self.result_fields()}
