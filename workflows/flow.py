"""Flows, and the durable steps any workflow may take with Baton's agents.

`FlowWorkflow` is one dynamic workflow: started as workflow type `NAME`, it runs the
`@baton.flow` of that name that the worker imported (baton/define/flows.py), with the
same run wrapper as the patterns (ledger, budget, status, search attributes,
approvals, queries, progress events). The flow's function is the workflow's body.

The steps (`agent_step`, `member_step`, `tool_step`, `approval_step`, `gather`) are
what `agent.run(...)`, `team.run(...)`, a `@baton.tool` called directly,
`baton.approval(...)` and `baton.gather(...)` do when they are awaited inside a
workflow: a flow's, or the user's own `@workflow.defn` through `BatonPlugin`. They
take the run's ledger (`current_ledger()`), so budgets, breakers, fallbacks,
contract repair, guardrails, approvals, spans, metrics and usage are those of
every Baton run. The agents a run uses are Python objects of the worker's own
code: their definitions join the run's catalogue on first use, never from input.
"""

from __future__ import annotations

import json
import typing
import weakref
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, TypeAdapter, ValidationError

    from baton.core.contracts import ContractError, contract_model, register_contract
    from baton.core.errors import FlowFailed, InvalidRunInput
    from baton.core.handoffs import DEFAULT_MAX_HANDOFFS, MAX_HANDOFFS_LIMIT
    from baton.core.model_io import Message, ModelRef
    from baton.core.runs import ApprovalRecord, RunInput, RunResult
    from baton.core.specs import AgentSpec, Catalogue
    from baton.core.steps import WorkflowSteps, install_workflow_steps
    from baton.core.text import shorten
    from baton.core.tools import Tool, ToolInvocation
    from baton.core.usage import Usage
    from baton.define.flows import (
        FLOWS,
        AgentResult,
        Flow,
        FlowArgumentsError,
        FlowInput,
        FlowResult,
    )

from baton.workflows.approval import current_desk
from baton.workflows.base import PatternWorkflow
from baton.workflows.handoffs import HandoffOptions, run_with_handoffs
from baton.workflows.ledger import RunLedger
from baton.workflows.members import run_member
from baton.workflows.tool_calls import execute_tool, policy_asks_a_person
from baton.workflows.toolbox import schedule_to_close

if TYPE_CHECKING:
    from baton.define.api import Member

T = TypeVar("T")

# A run's catalogue before its first agent: what a flow starts with.
EMPTY_CATALOGUE = Catalogue.model_construct(agents={}, teams={}, tools={}, guardrails={},
                                            prices={}, breakers={}, providers={})


@workflow.defn(dynamic=True)
class FlowWorkflow(PatternWorkflow):
    """Runs the `@baton.flow` named by this workflow's type."""

    pattern = "flow"
    # This module's own steps (see STEPS below).
    baton_steps: ClassVar[WorkflowSteps]

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> FlowResult:
        name = workflow.info().workflow_type
        flow = FLOWS.get(name)
        if flow is None:
            known = ", ".join(sorted(FLOWS)) or "none"
            # Not a typed failure: as for any workflow type a worker lacks, the task is
            # retried, so a worker that has it (the next deploy, another pool on the
            # queue) runs it; the Web UI shows this message on the failed task.
            raise RuntimeError(
                f"no flow or workflow named {name!r} on this worker (its flows: {known}); "
                "start a worker with the module that defines it: python worker.py --app "
                "MODULE")
        try:
            given = (workflow.payload_converter().from_payload(args[0].payload, FlowInput)
                     if args else FlowInput())
            arguments = flow.validate_arguments(given.arguments)
        except (ValidationError, FlowArgumentsError) as err:
            # Retrying cannot fix the input: fail the run, not its workflow task forever.
            raise InvalidRunInput(str(err)) from None
        prompt = (given.prompt.strip()
                  or shorten(json.dumps(given.arguments, default=str), 2000).strip())
        run = RunInput(member=name, catalogue=EMPTY_CATALOGUE, options=given.options,
                       messages=[Message(role="user", content=prompt or "(no input)")])
        return await self.execute(run, FlowResult, partial(self._body, flow, arguments),
                                  check=False)

    async def _body(self, flow: Flow[Any], arguments: dict[str, Any],
                    ledger: RunLedger) -> FlowResult:
        self.set_phase(f"{flow.name} is running")
        try:
            value = await flow.fn(**arguments)
        except (ApplicationError, workflow.NondeterminismError):
            raise  # typed failures, and what a fixed deployment can resume from
        except Exception as err:  # the flow's own code raised: fail the run, typed
            raise FlowFailed(flow.name, f"{type(err).__name__}: {err}") from err
        try:
            answer, as_json = flow.render(value)
        except ValidationError as err:
            raise FlowFailed(flow.name, f"returned {type(value).__name__}, not "
                             f"{flow.return_type}: {err.errors()[0]['msg']}") from None
        return FlowResult(answer=answer, value=as_json,
                          output=as_json if isinstance(as_json, dict) else None,
                          **ledger.result_fields())


# --- the run a step belongs to ---------------------------------------------------------

def current_ledger() -> RunLedger:
    """The ledger of the workflow this code runs in: a flow's or pattern's own, or one
    made for a user's workflow on its first Baton step (default budget)."""
    instance = workflow.instance()
    ledger = getattr(instance, "_ledger", None)
    if isinstance(ledger, RunLedger):
        return ledger
    ledger = getattr(instance, "_baton_ledger", None)
    if not isinstance(ledger, RunLedger):
        info = workflow.info()
        ledger = RunLedger(RunInput(member=info.workflow_type, catalogue=EMPTY_CATALOGUE,
                                    messages=[Message(role="user", content=info.workflow_type)]))
        instance._baton_ledger = ledger
    return ledger


# Each member's catalogue, built once per process: a pure function of worker code.
_catalogues: weakref.WeakKeyDictionary[Any, Catalogue] = weakref.WeakKeyDictionary()


def join(ledger: RunLedger, member: Member) -> None:
    """Make `member` and what it reaches (tools, guardrails, handoffs) known to the run.

    No validation here: each member's catalogue was validated when it was built.
    """
    part = _catalogues.get(member)
    if part is None:
        part = _catalogues[member] = member.catalogue()
    base = ledger.run.catalogue
    if all(n in base.agents for n in part.agents) and all(
            n in base.teams for n in part.teams) and all(
            base.agents[n] is a for n, a in part.agents.items()):
        return
    merged = base.model_copy(update={
        table: {**getattr(base, table), **getattr(part, table)}
        for table in ("agents", "teams", "tools", "guardrails", "prices", "breakers")})
    ledger.run = ledger.run.model_copy(update={"catalogue": merged})


# --- steps ----------------------------------------------------------------------------

def _messages(input: str | Sequence[Message]) -> list[Message]:
    if isinstance(input, str):
        return [Message(role="user", content=input)]
    messages = list(input)
    if not messages or messages[-1].role != "user":
        messages.append(Message(role="user", content="Continue."))
    return messages


async def agent_step(agent: Any, input: str | Sequence[Message], *,
                     output: type[BaseModel] | None, model: str | None, isolated: bool,
                     context: BaseModel | None = None,
                     max_handoffs: int = DEFAULT_MAX_HANDOFFS) -> AgentResult[Any]:
    """`agent.run(...)` inside a workflow; `context` is the run's state object, which the
    agent's instructions may read and its tools and handoff hooks may change. An agent
    with handoffs may hand the conversation on (workflows/handoffs.py): `handled_by`
    says who answered, and `output` is that agent's."""
    ledger = current_ledger()
    join(ledger, agent)
    spec = agent.spec
    if context is not None and not isinstance(context, BaseModel):
        raise ApplicationError(
            f"agent {spec.name!r}: context must be a pydantic model instance, not "
            f"{type(context).__name__}", type="InvalidContext", non_retryable=True)
    if context is not None:
        try:  # its tools' activities rebuild it by name (the worker's app registers it)
            register_contract(type(context))
        except ContractError as err:
            raise ApplicationError(f"agent {spec.name!r}: context {err}",
                                   type="InvalidContext", non_retryable=True) from None
    if isolated and (output is not None or model is not None or context is not None
                     or agent.instructions_for is not None or spec.handoffs):
        raise ApplicationError(
            f"agent {spec.name!r}: isolated=True runs the agent alone, as declared; output=, "
            "model=, context=, instructions made from a context and handoffs need "
            "isolated=False", type="InvalidArguments", non_retryable=True)
    if not isinstance(max_handoffs, int) or not 1 <= max_handoffs <= MAX_HANDOFFS_LIMIT:
        raise ApplicationError(
            f"agent {spec.name!r}: max_handoffs must be a whole number from 1 to "
            f"{MAX_HANDOFFS_LIMIT}; got {max_handoffs!r}", type="InvalidArguments",
            non_retryable=True)
    updates: dict[str, Any] = {}
    chosen = model or ledger.run.options.model_override
    for given in {chosen, ledger.run.options.model_override} - {None}:
        try:  # a run's input may carry any string here: refuse it typed, before a call
            ModelRef.parse(str(given))
        except ValueError as err:
            raise ApplicationError(f"agent {spec.name!r}: {err}", type="InvalidArguments",
                                   non_retryable=True) from None
    if chosen is not None:
        updates.update(model=chosen, fallback_models=[])
    if agent.instructions_for is not None:
        updates["instructions"] = agent.instructions_for(context)
    if updates:
        spec = spec.model_copy(update=updates)
    contract = register_contract(output) if output is not None else spec.contract
    messages = _messages(input)
    before = dict(ledger.usage)
    if isolated:
        result = await run_member(ledger, spec.name, messages, as_child=True)
        value: Any = (contract_model(contract).model_validate(result.output)
                      if contract is not None and result.output is not None else result.answer)
        text, handled_by, chain = result.answer, spec.name, [spec.name]
    else:
        handled = await run_with_handoffs(ledger, spec.name, messages, HandoffOptions(
            max_handoffs=max_handoffs, context=context, contract=contract,
            prepare=_prepared(agent, spec, context, ledger.run.options.model_override)))
        value = next(v for v in (handled.output, handled.output_json, handled.answer)
                     if v is not None)
        text, handled_by, chain = handled.answer, handled.handled_by, handled.chain
    transcript = [*messages, Message(role="assistant", content=text, agent=handled_by)]
    return AgentResult(output=value, text=text, messages=transcript,
                       usage=_spent_by(ledger, chain, before), handled_by=handled_by)


def _prepared(agent: Any, spec: AgentSpec, context: BaseModel | None,
              run_model: str | None) -> Callable[[AgentSpec], AgentSpec]:
    """How each agent of a chain runs in this call: the called agent as `spec`; the
    agents it hands to on the run's model override, with instructions made from the
    context where theirs are a function of it."""
    reachable: dict[str, Any] = {}
    stack = list(agent.members())
    while stack:
        member = stack.pop()
        if member.name not in reachable:
            reachable[member.name] = member
            stack.extend(member.members())

    def prepare(target: AgentSpec) -> AgentSpec:
        if target.name == spec.name:
            return spec
        updates: dict[str, Any] = {}
        if run_model is not None:
            updates.update(model=run_model, fallback_models=[])
        made = getattr(reachable.get(target.name), "instructions_for", None)
        if made is not None:
            updates["instructions"] = made(context)
        return target.model_copy(update=updates) if updates else target

    return prepare


def _spent_by(ledger: RunLedger, chain: list[str], before: dict[str, Usage]) -> Usage:
    """What the agents of a chain spent since `before` (a team's, its agents')."""
    catalogue = ledger.run.catalogue
    agents = {a for member in chain for a in (
        catalogue.closure(member).agents if member in catalogue.teams else [member])}
    return Usage.sum(ledger.usage.get(a, Usage()).minus(before.get(a, Usage()))
                     for a in sorted(agents))


async def member_step(team: Any, input: str | Sequence[Message]) -> RunResult:
    """`team.run(...)` inside a workflow: the team's pattern as a child workflow."""
    ledger = current_ledger()
    join(ledger, team)
    return await run_member(ledger, team.name, _messages(input))


async def tool_step(tool: Tool, arguments: dict[str, Any]) -> Any:
    """A `@baton.tool` called inside a workflow: its own activity, its typed value."""
    ledger = current_ledger()
    definition = tool.definition
    who = ledger.run.member
    try:
        checked = tool.validate(arguments)
    except ValidationError as err:
        raise ApplicationError(f"invalid arguments for tool {tool.name!r}: {err}",
                               type="InvalidToolArguments", non_retryable=True) from None
    as_json = {k: TypeAdapter(Any).dump_python(getattr(checked, k), mode="json")
               for k in type(checked).model_fields}
    invocation = ToolInvocation(tool=tool.name, agent=who, call_id=str(workflow.uuid4()),
                                arguments=as_json, team=who, want_value=True,
                                max_result_chars=definition.max_result_chars)
    if definition.approval != "never":
        # A policy is the user's code: run as an activity, so its answer is recorded and
        # a replay never re-evaluates it (as for an agent's tool calls).
        needed = definition.approval == "always" or await policy_asks_a_person(
            definition, invocation)
        if needed:
            record = await approval_step(
                f"{tool.name} requires approval", as_json, subject=tool.name,
                timeout=definition.approval_timeout_s, default=definition.approval_default)
            if not record.approved:
                raise ApplicationError(f"{tool.name} was rejected: {record.reason}",
                                       type="ToolRejected", non_retryable=True)
            invocation.approved_request = record.request.request_id
            invocation.approval_timed_out = record.timed_out
    budget = ledger.check_budget()
    ledger.charge(who, Usage(tool_calls=1))
    shown = ", ".join(f"{k}={shorten(json.dumps(v), 40)}" for k, v in as_json.items())
    try:
        # Always its own activity in a flow, even a local tool (as recorded histories have it).
        outcome = await execute_tool(
            definition, invocation, summary=shorten(f"{who} · {tool.name}({shown})", 200),
            schedule_to_close=schedule_to_close(
                definition.timeout_s, definition.max_attempts, 30.0, budget.max_seconds),
            local=False)
    except ActivityError as err:
        cause = err.cause
        ledger.step("tool_call", who, f"{tool.name}({shown}) failed", ok=False,
                    error_type=cause.type if isinstance(cause, ApplicationError) else None)
        raise
    ledger.charge(who, Usage(tool_seconds=outcome.elapsed_s))
    ledger.step("tool_call", who, f"{tool.name}({shown}) -> {shorten(outcome.content, 120)}",
                usage=Usage(tool_calls=1, tool_seconds=outcome.elapsed_s))
    hints = typing.get_type_hints(tool.fn)
    returns = hints.get("return", Any)
    return TypeAdapter(returns).validate_python(outcome.value)


async def approval_step(question: str, details: dict[str, Any] | None = None, *,
                        subject: str = "approval", timeout: float = 86_400.0,
                        default: str = "reject") -> ApprovalRecord:
    """Wait, durably, for a person's decision (`starter.py approve`, `baton.approve`)."""
    ledger = current_ledger()
    return await current_desk().ask(
        ledger, kind="flow", agent=ledger.run.member, subject=subject,
        arguments=details or {}, why=question, timeout_s=timeout,
        default="approve" if default == "approve" else "reject")


# agent.run, team.run, a tool called directly and baton.approval reach these from the
# layers below (baton/core/steps.py). A worker that checks Baton's workflows in the
# sandbox imports this module again for each run: a flow's run finds that copy's
# steps on its workflow (their ledger is its own), and only a copy made outside any
# sandbox serves everyone else (your workflows through BatonPlugin, which passes
# Baton through).
STEPS = WorkflowSteps(agent=agent_step, member=member_step, tool=tool_step,
                      approval=approval_step)
FlowWorkflow.baton_steps = STEPS
if not workflow.unsafe.in_sandbox():
    install_workflow_steps(STEPS)
