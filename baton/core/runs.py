"""The input every pattern workflow takes and the typed results they return."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, field_validator

from baton.core.model_io import MAX_PROMPT_BYTES, Chaos, Message
from baton.core.specs import Catalogue, FanOutTeam, PipelineTeam, SupervisorTeam, TriageTeam
from baton.core.usage import Budget, Usage

Status = Literal["ok", "degraded", "budget_exhausted", "blocked", "failed"]
# A run's status while it lives and after: what `BatonStatus` and `starter.py list` show.
RunStatus = Literal["running", "waiting_approval", "ok", "degraded", "budget_exhausted",
                    "blocked", "failed"]
RUN_STATUSES: tuple[str, ...] = RunStatus.__args__  # type: ignore[attr-defined]

# How long past its deadline the server lets a run finish writing its partial result.
DEADLINE_GRACE_S = 30


class RunOptions(BaseModel):
    """Per-run settings, recorded in the run's input so replay sees the same values."""

    chaos: Chaos | None = None
    # The starter's --model, already applied to the catalogue; kept to show in the UI.
    model_override: str | None = None
    budget: Budget = Field(default_factory=Budget)
    # Models stream their text to the run's subscribers (baton/runtime/streaming.py); off, a
    # run's history holds no stream signals.
    stream: bool = Field(default=False, exclude_if=lambda on: not on)


class RunInput(BaseModel):
    """Run `member` (an agent or a team) on a conversation. Every pattern takes this."""

    member: str
    messages: list[Message] = Field(min_length=1)
    catalogue: Catalogue
    options: RunOptions = Field(default_factory=RunOptions)
    # Where this run sits in a composition ("concierge/research_desk"); labels traces.
    path: str = ""
    # A map fan-out's inputs: one branch per item.
    items: list[str] | None = Field(default=None, max_length=2000)

    @field_validator("messages")
    @classmethod
    def _prompt_is_usable(cls, messages: list[Message]) -> list[Message]:
        last = messages[-1]
        if last.role != "user" or not last.content.strip():
            raise ValueError("the conversation must end with a non-empty user message")
        size = sum(len(m.content.encode()) for m in messages)
        if size > MAX_PROMPT_BYTES:
            raise ValueError(
                f"the conversation is {size} bytes; at most {MAX_PROMPT_BYTES} are accepted"
            )
        return messages

    @property
    def prompt(self) -> str:
        return self.messages[-1].content

    def for_member(self, member: str, messages: list[Message],
                   budget: Budget | None = None) -> RunInput:
        """The input of a nested run: only the catalogue entries it needs, its budget."""
        options = self.options if budget is None else self.options.model_copy(
            update={"budget": budget})
        return RunInput(
            member=member,
            messages=messages,
            catalogue=self.catalogue.closure(member),
            options=options,
            path=f"{self.path}/{member}" if self.path else member,
        )


StepKind = Literal[
    "model_call", "repair", "fallback", "handoff", "branch", "synthesis",
    "delegation", "review", "stage", "gate", "error", "tool_call", "plan", "approval",
    "guardrail",
]


class Step(BaseModel):
    """One entry of a run's ordered trace."""

    kind: StepKind
    agent: str
    detail: str
    ok: bool = True
    model: str | None = None
    # The nested run the step happened in ("" for the top-level run).
    path: str = ""
    usage: Usage | None = None
    # For failed steps: the failure's type (baton.core.errors / provider error type names).
    error_type: str | None = None


# A tool_call step's detail, as the workflows write it: "name(args) -> result" or
# "name(args) failed[: reason]" (workflows/agent_call.py, workflows/flow.py).
_TOOL_CALL = re.compile(r"(?P<tool>[^\s(]+)\((?P<arguments>.*?)\)"
                        r"(?: -> (?P<result>.*)| failed(?:: (?P<reason>.*))?)", re.DOTALL)


class ToolCallRecord(BaseModel):
    """One tool call of a run, as its trace recorded it (arguments and result shortened)."""

    agent: str
    tool: str
    arguments: str
    status: Literal["ok", "failed"]
    # What the tool returned, or why it failed.
    result: str = ""
    # The nested run it happened in ("" for the top-level run).
    path: str = ""

    @classmethod
    def from_step(cls, step: Step) -> ToolCallRecord:
        match = _TOOL_CALL.fullmatch(step.detail)
        if match is None:  # not in the usual shape: keep the whole line as the result
            return cls(agent=step.agent, tool=step.detail.split("(", 1)[0], arguments="",
                       status="ok" if step.ok else "failed", result=step.detail,
                       path=step.path)
        failed = match["result"] is None or not step.ok
        return cls(agent=step.agent, tool=match["tool"], arguments=match["arguments"],
                   status="failed" if failed else "ok",
                   result=match["result"] or match["reason"] or "", path=step.path)


ApprovalKind = Literal["tool", "stage", "acceptance", "flow"]
ApprovalDefault = Literal["approve", "reject"]


class ApprovalRequest(BaseModel):
    """A step waiting for a person: who asks, for what, and why."""

    request_id: str
    workflow_id: str
    kind: ApprovalKind
    agent: str
    # The tool, the stage, or the worker whose result is to be accepted.
    subject: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    why: str
    asked_at: datetime
    timeout_s: float
    # What happens when nobody decides within timeout_s.
    default: ApprovalDefault = "reject"


class DecisionSignature(BaseModel):
    """An approver's Ed25519 signature of a decision (baton/runtime/approver_keys.py)."""

    signer: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    # Aware, so client and worker format the signed time identically.
    signed_at: AwareDatetime
    value: str = Field(max_length=200)  # base64 of the 64-byte signature


class Decision(BaseModel):
    """A person's decision (the `decide` update); no request_id: every pending request."""

    request_id: str | None = None
    approve: bool
    note: str = Field(default="", max_length=4000)
    reason: str = Field(default="", max_length=4000)
    by: str = Field(default="", max_length=200)
    # The sending client's Temporal identity (`Client.identity`), as the client states
    # it: Temporal records the same self-chosen string with the Update.
    identity: str = Field(default="", max_length=200)
    signature: DecisionSignature | None = None


class ApprovalRecord(BaseModel):
    """A decided request, as the run's history and result record it."""

    request: ApprovalRequest
    approved: bool
    note: str = ""
    reason: str = ""
    decided_by: str = ""
    decided_at: datetime
    timed_out: bool = False
    # Client-reported: the Temporal identity of the client that sent the decision.
    client_identity: str = ""
    # The approver whose signature the worker verified (BATON_APPROVER_KEYS); "" unsigned.
    signed_by: str = ""


class Trip(BaseModel):
    """Which guardrail blocked a run, where and why: carried typed to whoever runs it."""

    guardrail: str
    # What it checked: "input", "output", or a nested run's ("input in billing").
    where: str
    reason: str


class RunResult(BaseModel):
    """What any run returns; pattern results add their own fields."""

    member: str
    pattern: str
    status: Status = "ok"
    answer: str
    # The last agent's validated structured output, when it has a contract.
    output: dict[str, Any] | None = None
    usage: dict[str, Usage] = Field(default_factory=dict)
    trace: list[Step] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    # Every decision a person (or an approval timeout) made in this run and its children.
    approvals: list[ApprovalRecord] = Field(default_factory=list)
    # The guardrail that blocked the run (status "blocked"), else None.
    trip: Trip | None = None

    @property
    def total_usage(self) -> Usage:
        return Usage.sum(self.usage.values())

    @property
    def tool_calls(self) -> list[ToolCallRecord]:
        """Every tool call of the run and its nested runs, in order."""
        return [ToolCallRecord.from_step(s) for s in self.trace if s.kind == "tool_call"]


class RunState(BaseModel):
    """A live run's status (the `state` query)."""

    status: RunStatus
    phase: str
    usage: Usage = Field(default_factory=Usage)


class TriageResult(RunResult):
    handled_by: str = ""
    route_reason: str = ""


class BranchTask(BaseModel):
    """One branch of a fan-out: a member and its own prompt (None: the run's request)."""

    member: str
    task: str | None = None


class BranchOutcome(BaseModel):
    branch: str
    ok: bool
    answer: str = ""
    output: dict[str, Any] | None = None
    # The contract `output` follows, so readers validate it back into its model.
    contract: str | None = None
    error: str | None = None
    task: str | None = None


class FanOutResult(RunResult):
    branches: list[BranchOutcome] = Field(default_factory=list)
    # The subtasks a planner made (planned fan-outs), and how the plan was bounded.
    plan: list[BranchTask] | None = None
    plan_note: str | None = None


class ShardInput(BaseModel):
    """A slice of a large fan-out, run by its own workflow (see workflows/fanout.py)."""

    run: RunInput
    tasks: list[BranchTask] = Field(min_length=1)
    # Single-agent branches as child workflows (else as agent calls in the shard).
    as_children: bool = True


class Delegation(BaseModel):
    worker: str
    task: str
    # "unreviewed": the team delegates without a review (review = false).
    verdict: Literal["accept", "revise", "reassign", "forced_accept", "failed", "unreviewed"]
    answer: str
    feedback: str = ""


class SupervisorResult(RunResult):
    delegations: list[Delegation] = Field(default_factory=list)
    rounds: int = 0


class StageOutcome(BaseModel):
    stage: str
    attempts: int
    output: dict[str, Any] | None = None
    answer: str = ""


class PipelineResult(RunResult):
    stages: list[StageOutcome] = Field(default_factory=list)


@dataclass(frozen=True)
class Pattern:
    """A built-in pattern: the team spec that declares it (None: a lone agent), the
    result its runs return, and the workflow type a worker registers to run it."""

    spec: type[BaseModel] | None
    result: type[RunResult]
    workflow: str


# The pattern table, by the name a spec's `pattern` field holds: every other view of
# the patterns (workflow types, result types, the worker's workflows) derives from it.
PATTERNS: dict[str, Pattern] = {
    "triage": Pattern(TriageTeam, TriageResult, "TriageWorkflow"),
    "fanout": Pattern(FanOutTeam, FanOutResult, "FanOutWorkflow"),
    "supervisor": Pattern(SupervisorTeam, SupervisorResult, "SupervisorWorkflow"),
    "pipeline": Pattern(PipelineTeam, PipelineResult, "PipelineWorkflow"),
    "agent": Pattern(None, RunResult, "AgentWorkflow"),
}
# The workflow type that runs each pattern (the names the worker registers).
PATTERN_WORKFLOWS = {name: pattern.workflow for name, pattern in PATTERNS.items()}
