"""The one way a workflow runs an agent: `run_agent`, and the run's ledger.

`run_agent` turns an agent spec into a `call_model` activity with the spec's
timeouts and bounded retry policy, validates the answer against the agent's
contract (re-prompting with the validation error a bounded number of times), and
moves on to the agent's fallback models when a model keeps failing. Malformed
output never leaves this function: it returns validated data or raises
`AgentFailed`.

`RunLedger` is the per-run bookkeeping every pattern shares: the ordered step
trace, usage per agent, and readable ids for child workflows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from baton.contracts import CONTRACTS, contract_schema
    from baton.messages import (
        Budget,
        Message,
        ModelRequest,
        ModelResponse,
        ToolCall,
        ToolSpec,
        Usage,
    )
    from baton.runs import RunInput, RunResult, Step, StepKind
    from baton.specs import AgentSpec
    from baton.text import shorten

CALL_MODEL = "call_model"

# Returns a reason to reject an otherwise valid output (e.g. a route not declared).
Acceptor = Callable[[BaseModel], str | None]


class AgentFailed(ApplicationError):
    """An agent produced no acceptable answer on any of its models."""

    error_type = "AgentFailed"

    def __init__(self, agent: str, reason: str) -> None:
        super().__init__(f"agent {agent!r} failed: {reason}", type=self.error_type,
                         non_retryable=True)
        self.agent = agent
        self.reason = reason


class BudgetExhausted(ApplicationError):
    """The run's token, call, USD or time budget is spent; it stops with partial results."""

    def __init__(self, limit: str) -> None:
        super().__init__(f"budget exhausted ({limit})", type="BudgetExhausted",
                         non_retryable=True)
        self.limit = limit


class ContractViolation(AgentFailed):
    """Every model of an agent kept breaking its contract, repairs included."""

    error_type = "ContractViolation"

    def __init__(self, agent: str, contract: str, problem: str) -> None:
        super().__init__(agent, f"{contract} violated: {problem}")
        self.contract = contract


@dataclass
class AgentReply:
    agent: str
    model: str
    text: str
    output: dict[str, Any] | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)

    @property
    def answer(self) -> str:
        return self.text if self.output is None else json.dumps(self.output)


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
        self._calls: dict[str, int] = {}
        self._children: dict[str, int] = {}

    def step(self, kind: StepKind, agent: str, detail: str, *, ok: bool = True,
             model: str | None = None, usage: Usage | None = None) -> None:
        self.trace.append(Step(kind=kind, agent=agent, detail=detail, ok=ok, model=model,
                               path=self.run.path, usage=usage))

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

    def check_budget(self) -> Budget:
        """What remains of the run's budget; raises BudgetExhausted when nothing does."""
        budget = self.run.options.budget
        spent = self.spent
        elapsed = (workflow.now() - workflow.info().start_time).total_seconds()
        if (limit := budget.exceeded_by(spent, elapsed)) is not None:
            raise BudgetExhausted(limit)
        return budget.remaining(spent, elapsed)

    def absorb(self, child: RunResult) -> None:
        """Fold a nested run's usage and trace into this run's."""
        for agent, usage in child.usage.items():
            self.charge(agent, usage)
        self.trace.extend(child.trace)
        self.reasons.extend(f"{child.member}: {r}" for r in child.reasons)

    def child_id(self, member: str) -> str:
        count = self._children.get(member, 0) + 1
        self._children[member] = count
        suffix = "" if count == 1 else f"-{count}"
        return f"{workflow.info().workflow_id}/{member}{suffix}"

    @property
    def status(self) -> str:
        if self.exhausted is not None:
            return "budget_exhausted"
        return "degraded" if self.reasons else "ok"

    def result_fields(self) -> dict[str, Any]:
        return {"member": self.run.member, "usage": self.usage, "trace": self.trace,
                "reasons": self.reasons, "status": self.status}

    def stopped_by_budget(self, err: BudgetExhausted) -> dict[str, Any]:
        """Result fields for a run its budget ended: the answers gathered so far."""
        self.exhausted = err.limit
        self.reasons.append(f"budget exhausted ({err.limit}); partial results")
        self.step("error", self.run.member, f"budget exhausted ({err.limit})", ok=False)
        done = "\n".join(f"- {who}: {shorten(answer, 300)}" for who, answer in self.partials)
        answer = (f"Budget exhausted ({err.limit}) before the run finished. "
                  f"Partial results:\n{done or '- none'}")
        return {"answer": answer, **self.result_fields()}


def _retry_policy(agent: AgentSpec) -> RetryPolicy:
    retry = agent.retry
    return RetryPolicy(
        maximum_attempts=retry.max_attempts,
        initial_interval=timedelta(seconds=retry.initial_interval_s),
        backoff_coefficient=retry.backoff,
        maximum_interval=timedelta(seconds=retry.max_interval_s),
    )


def _schedule_to_close(agent: AgentSpec) -> timedelta:
    """Upper bound on one call including every retry and the waits between them."""
    retry = agent.retry
    waits = retry.max_interval_s * (retry.max_attempts - 1)
    return timedelta(seconds=agent.timeout_s * retry.max_attempts + waits + 5)


async def call_model_once(ledger: RunLedger, agent: AgentSpec, model: str,
                          messages: list[Message], *, schema: dict[str, Any] | None,
                          schema_name: str | None, tools: Sequence[ToolSpec]) -> ModelResponse:
    """One `call_model` activity (Temporal retries included) with the agent's limits.

    The run's budget is checked first; the call may not ask for more output tokens
    than the budget has left.
    """
    budget = ledger.check_budget()
    max_output = agent.max_output_tokens
    if budget.max_tokens is not None:
        max_output = min(max_output, budget.max_tokens)
    schedule_to_close = _schedule_to_close(agent)
    if budget.max_seconds is not None:
        # No call, retries included, may outlive the run's deadline.
        schedule_to_close = min(schedule_to_close, timedelta(seconds=budget.max_seconds))
    request = ModelRequest(
        agent=agent.name,
        model=model,
        instructions=agent.instructions,
        messages=messages,
        output_schema=schema,
        output_schema_name=schema_name,
        tools=list(tools),
        max_output_tokens=max_output,
        temperature=agent.temperature,
        call_index=ledger.next_call_index(agent.name),
        call_key=workflow.info().workflow_id.partition("/")[2],
        # Leave the provider's own HTTP timeout a margin inside start-to-close.
        timeout_s=max(agent.timeout_s * 0.9, agent.timeout_s - 2),
        chaos=ledger.run.options.chaos,
        endpoint=ledger.run.catalogue.endpoint_for(model),
        price=ledger.run.catalogue.price_for(model),
        breaker=ledger.run.catalogue.breaker_for(model),
    )
    try:
        response: ModelResponse = await workflow.execute_activity(
            CALL_MODEL,
            request,
            result_type=ModelResponse,
            start_to_close_timeout=timedelta(seconds=agent.timeout_s),
            schedule_to_close_timeout=schedule_to_close,
            heartbeat_timeout=timedelta(seconds=agent.heartbeat_s),
            retry_policy=_retry_policy(agent),
            summary=f"{agent.name} · {model}",
        )
    except ActivityError as err:
        # Failed attempts count against the call budget too (their tokens are unknown).
        tries = (agent.retry.max_attempts
                 if err.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED else 1)
        ledger.charge(agent.name, Usage(calls=tries))
        if err.retry_state == RetryState.TIMEOUT and budget.max_seconds is not None:
            ledger.check_budget()  # the deadline, not the model, ended the call
        raise
    ledger.charge(agent.name, response.usage)
    return response


async def run_agent(
    ledger: RunLedger,
    agent: AgentSpec,
    messages: list[Message],
    *,
    contract: str | None = None,
    schema: dict[str, Any] | None = None,
    accept: Acceptor | None = None,
    tools: Sequence[ToolSpec] = (),
) -> AgentReply:
    """Run `agent` on `messages`; validated output or `AgentFailed`.

    `contract` overrides the agent's own (e.g. a supervisor asked for a Review);
    `schema` overrides the contract's JSON schema (e.g. routes narrowed to an enum).
    """
    contract = contract or agent.contract
    if contract is not None and schema is None:
        schema = contract_schema(contract)
    failures: list[str] = []
    violation: str | None = None  # the latest contract problem, if that is why we failed
    for model in [agent.model, *agent.fallback_models]:
        if model != agent.model:
            ledger.step("fallback", agent.name, f"trying fallback model {model}", model=model)
        conversation = list(messages)
        for repair in range(agent.max_repairs + 1):
            try:
                response = await call_model_once(ledger, agent, model, conversation,
                                                 schema=schema, schema_name=contract,
                                                 tools=tools)
            except ActivityError as err:
                reason = f"{model}: {_describe(err)}"
                ledger.step("error", agent.name, reason, ok=False, model=model)
                failures.append(reason)
                violation = None
                break
            problem, output = (None, None) if contract is None else _check(
                contract, response, accept)
            if problem is None:
                detail = (f"{contract} ok" if contract
                          else shorten(response.text or "tool calls", 160))
                ledger.step("model_call", agent.name, detail, model=model, usage=response.usage)
                if model != agent.model:
                    ledger.degrade(f"{agent.name} answered on fallback {model} after: "
                                   f"{failures[-1]}")
                reply = AgentReply(agent.name, model, response.text, output=output,
                                   tool_calls=response.tool_calls)
                if reply.answer:
                    ledger.partials.append((agent.name, reply.answer))
                return reply
            ledger.step("repair", agent.name, f"{contract} violated: {problem}", ok=False,
                        model=model, usage=response.usage)
            failures.append(f"{model}: {contract} violated: {problem}")
            violation = problem
            if repair < agent.max_repairs:
                conversation += [
                    Message(role="assistant", content=response.text, agent=agent.name),
                    Message(role="user", content=(
                        f"Your reply did not match the {contract} schema: {problem}\n"
                        "Reply again with only JSON that matches the schema.")),
                ]
    if violation is not None and contract is not None:
        raise ContractViolation(agent.name, contract, violation)
    raise AgentFailed(agent.name, "; ".join(failures[-3:]))


def _check(contract: str, response: ModelResponse,
           accept: Acceptor | None) -> tuple[str | None, dict[str, Any] | None]:
    """(problem, validated output): exactly one is None."""
    if response.parsed is None:
        return f"not a JSON object: {shorten(response.text, 80)!r}", None
    try:
        value = CONTRACTS[contract].model_validate(response.parsed)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or contract
        return f"{where}: {first['msg']} ({err.error_count()} error(s))", None
    if accept is not None and (reason := accept(value)) is not None:
        return reason, None
    return None, value.model_dump(mode="json")


def _describe(err: ActivityError) -> str:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type or 'error'}: {cause.message}"
    return str(cause or err)
