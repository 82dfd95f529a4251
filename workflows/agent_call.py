"""The one way a workflow runs an agent: `run_agent`, with its general tool loop.

`run_agent` turns an agent spec into `call_model` activities with the spec's
timeouts and bounded retry policy. While the model asks for tools (at most
`max_tool_turns` turns), each call runs through a `Toolbox` handler: a function
tool is its own activity, registered under the tool's name (`run_function_tool`);
a supervisor's delegation to a worker is another kind of handler. Calls of one
turn run concurrently and their results go back to the model as tool messages
(never as user text), each function tool's result first screened by the agent's
`tool_output_guardrails`.
The final answer is validated against the agent's contract (re-prompting with the
validation error a bounded number of times), and the agent moves on to its
fallback models when a model keeps failing, keeping the tool results it already
has. Malformed output never leaves this function: it returns validated data or
raises `AgentFailed`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from baton.core.contracts import contract_model, contract_schema, schema_title
    from baton.core.errors import AgentFailed, ContractViolation, ToolFailed
    from baton.core.model_io import (
        MAX_CALL_BYTES,
        ConversationRef,
        Message,
        ModelRequest,
        ModelResponse,
        ToolCall,
        ToolSpec,
        assistant_turn,
    )
    from baton.core.runs import ApprovalRecord
    from baton.core.specs import AgentSpec
    from baton.core.stream_events import AttemptRestarted
    from baton.core.text import shorten
    from baton.core.tools import (
        AGENT_TOOL_EXTRACTORS,
        ToolDef,
        ToolInvocation,
        ToolOutcome,
    )
    from baton.core.usage import Usage
    from baton.define.flows import AgentResult

from baton.workflows.approval import current_desk
from baton.workflows.guardrails import check_guardrails, screen_tool_output
from baton.workflows.ledger import RunLedger
from baton.workflows.mcp import mcp_toolbox
from baton.workflows.streaming import publish, stream_target
from baton.workflows.tool_calls import ensure_served, execute_tool, policy_asks_a_person
from baton.workflows.toolbox import (
    NO_TOOLS,
    Toolbox,
    ToolHandler,
    describe,
    retry_policy,
    schedule_to_close,
)

CALL_MODEL = "call_model"

# Returns a reason to reject an otherwise valid output (e.g. a route not declared).
Acceptor = Callable[[BaseModel], str | None]


@dataclass
class StoredPrefix:
    """The conversation an agent's previous call stored (activities/conversations.py):
    its reference, and the messages as this workflow holds them."""

    ref: ConversationRef
    messages: list[Message]

    def split(self, conversation: list[Message]) -> tuple[ConversationRef | None,
                                                          list[Message]]:
        """(reference, what follows it) when `conversation` starts with the stored
        messages; else (None, the whole conversation), e.g. after a handoff's filter
        rewrote it."""
        count = len(self.messages)
        if conversation[:count] == self.messages:
            return self.ref, conversation[count:]
        return None, conversation


@dataclass
class AgentReply:
    agent: str
    model: str
    text: str
    # The validated contract output, as the contract's model.
    output: BaseModel | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_turns: int = 0

    @property
    def output_json(self) -> dict[str, Any] | None:
        return None if self.output is None else self.output.model_dump(mode="json")

    @property
    def answer(self) -> str:
        return self.text if self.output is None else self.output.model_dump_json()


async def call_model_once(ledger: RunLedger, agent: AgentSpec, model: str,
                          messages: list[Message], *, schema: dict[str, Any] | None,
                          schema_name: str | None, tools: Sequence[ToolSpec],
                          stored: StoredPrefix | None = None) -> ModelResponse:
    """One `call_model` activity (Temporal retries included) with the agent's limits.

    The run's budget is checked first; the call may not ask for more output tokens
    than the budget has left. With `stored`, the call carries a reference to the
    stored conversation and only the messages after it.
    """
    prefix, new_messages = (None, messages) if stored is None else stored.split(messages)
    budget = ledger.check_budget()
    max_output = agent.max_output_tokens
    if budget.max_tokens is not None:
        max_output = min(max_output, budget.max_tokens)
    retry = agent.retry
    request = ModelRequest(
        agent=agent.name,
        model=model,
        instructions=agent.instructions,
        description=agent.description,
        messages=new_messages,
        prefix=prefix,
        output_schema=schema,
        output_schema_name=schema_name,
        tools=list(tools),
        max_output_tokens=max_output,
        temperature=agent.temperature,
        call_index=ledger.next_call_index(agent.name),
        call_key=workflow.info().workflow_id.partition("/")[2],
        team=ledger.run.member,
        # Leave the provider's own HTTP timeout a margin inside start-to-close.
        timeout_s=max(agent.timeout_s * 0.9, agent.timeout_s - 2),
        chaos=ledger.run.options.chaos,
        price=ledger.run.catalogue.price_for(model),
        breaker=ledger.run.catalogue.breaker_for(model),
        stream=stream_target(ledger.run.options, ledger.run.path),
    )
    size = len(request.__pydantic_serializer__.to_json(request))
    if size > MAX_CALL_BYTES:
        reason = (f"the call to {model} would carry {size} bytes, over the "
                  f"{MAX_CALL_BYTES} a recorded call may; shorten the conversation or "
                  "lower the tools' max_result_chars")
        ledger.step("error", agent.name, reason, ok=False, model=model)
        raise AgentFailed(agent.name, reason)
    try:
        response: ModelResponse = await workflow.execute_activity(
            CALL_MODEL,
            request,
            result_type=ModelResponse,
            start_to_close_timeout=timedelta(seconds=agent.timeout_s),
            schedule_to_close_timeout=schedule_to_close(
                agent.timeout_s, retry.max_attempts, retry.max_interval_s, budget.max_seconds),
            heartbeat_timeout=timedelta(seconds=agent.heartbeat_s),
            retry_policy=retry_policy(retry.max_attempts, retry.initial_interval_s,
                                      retry.backoff, retry.max_interval_s),
            summary=f"{agent.name} · {model}",
        )
    except ActivityError as err:
        # Failed attempts count against the call budget too (their tokens are unknown).
        tries = (retry.max_attempts
                 if err.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED else 1)
        ledger.charge(agent.name, Usage(calls=tries))
        if request.stream is not None:
            # Its text so far is void; the activity could not say so if its worker died.
            publish(AttemptRestarted(
                workflow_id=workflow.info().workflow_id, path=request.stream.path,
                message_id=request.stream.message_id, agent=agent.name,
                reason=describe(err)))
        if err.retry_state == RetryState.TIMEOUT and budget.max_seconds is not None:
            ledger.check_budget()  # the deadline, not the model, ended the call
        raise
    ledger.charge(agent.name, response.usage)
    return response


async def run_function_tool(ledger: RunLedger, agent: AgentSpec, tool: ToolDef,
                            call: ToolCall, context: BaseModel | None = None) -> str:
    """One function-tool call as its own activity; the text the model reads back.

    The call counts against the run's tool-call budget when it starts. A tool that
    fails after its retries is reported to the model, or fails the agent where the
    tool says so; a tool no worker has fails the run at once (non-retryable).
    """
    ledger.check_budget()
    invocation = ToolInvocation(tool=tool.name, agent=agent.name, call_id=call.id,
                                arguments=call.arguments, max_result_chars=tool.max_result_chars,
                                team=ledger.run.member,
                                context=(context.model_dump(mode="json")
                                         if context is not None else None),
                                context_model=(type(context).__name__
                                               if context is not None else None))
    arguments = ", ".join(f"{k}={shorten(json.dumps(v), 40)}" for k, v in call.arguments.items())
    await ensure_served(ledger, tool)  # before a person is asked about a call that cannot run
    if tool.approval != "never":
        decision = await _approval(ledger, agent, tool, invocation)
        if decision is not None and not decision.approved:
            return (f"Rejected by a person: {decision.reason}. The tool {tool.name} did not "
                    "run; do not call it again with these arguments.")
        if decision is not None:
            invocation.approved_request = decision.request.request_id
            invocation.approval_timed_out = decision.timed_out
    budget = ledger.check_budget()  # again: a person may have taken the deadline
    ledger.charge(agent.name, Usage(tool_calls=1))
    summary = shorten(f"{agent.name} · {tool.name}({arguments})", 200)
    to_close = schedule_to_close(tool.timeout_s, tool.max_attempts, 30.0, budget.max_seconds)
    started = workflow.now()
    try:
        outcome = await execute_tool(tool, invocation, summary=summary,
                                     schedule_to_close=to_close, local=tool.local)
    except ActivityError as err:
        elapsed = (workflow.now() - started).total_seconds()
        ledger.charge(agent.name, Usage(tool_seconds=elapsed))
        return await tool_failure(ledger, agent, tool.name, arguments, describe(err),
                                  tool.on_failure)
    ledger.charge(agent.name, Usage(tool_seconds=outcome.elapsed_s))
    if outcome.context is not None and context is not None:
        apply_context(context, outcome.context)
    return await tool_result(ledger, agent, tool.name, arguments, outcome)


async def tool_failure(ledger: RunLedger, agent: AgentSpec, name: str, arguments: str,
                       reason: str, on_failure: str) -> str:
    """What the model reads of a tool call that failed after its retries, recorded in
    the trace; `ToolFailed` instead when the tool fails its agent (`on_failure`)."""
    ledger.step("tool_call", agent.name, f"{name}({arguments}) failed: {reason}", ok=False)
    if on_failure == "fail_agent":
        raise ToolFailed(agent.name, name, reason) from None
    # An error message is the tool's output too (it may quote what the tool read).
    return await screened(ledger, agent, name, f"Error: the tool {name} failed: {reason}")


async def tool_result(ledger: RunLedger, agent: AgentSpec, name: str, arguments: str,
                      outcome: ToolOutcome) -> str:
    """What the model reads of a tool's result, recorded in the trace. Screened before
    the trace records it: a withheld result appears nowhere but in the tool's own
    activity result."""
    content = await screened(ledger, agent, name, outcome.content)
    ledger.step("tool_call", agent.name, f"{name}({arguments}) -> {shorten(content, 120)}",
                ok=outcome.ok, usage=Usage(tool_calls=1, tool_seconds=outcome.elapsed_s))
    return content


async def run_agent_tool(ledger: RunLedger, caller: AgentSpec, tool: ToolDef, call: ToolCall,
                         context: BaseModel | None = None) -> str:
    """An agent offered as a tool (agent.as_tool()): it answers the caller's question in
    this workflow, with its own model, tools and limits; the caller's model reads its
    answer, or what the tool's output extractor makes of it. Its failure is reported to
    the caller's model like a function tool's."""
    callee = ledger.run.catalogue.agents[tool.agent or ""]
    question = str(call.arguments.get("input") or "").strip() or "(no question given)"
    messages = [Message(role="user", content=question)]
    shown = shorten(question, 80)
    try:
        reply = await run_agent(ledger, callee, messages,
                                toolbox=function_toolbox(ledger, callee, context))
    except AgentFailed as err:
        ledger.step("tool_call", caller.name, f"{tool.name}({shown}) failed: {err.reason}",
                    ok=False, error_type=err.type)
        return f"Error: the agent tool {tool.name} failed: {err.reason}"
    text = reply.answer
    extractor = AGENT_TOOL_EXTRACTORS.get(tool.name)
    if extractor is not None:
        result = AgentResult(
            output=reply.output if reply.output is not None else reply.text, text=reply.answer,
            messages=[*messages, Message(role="assistant", content=reply.answer,
                                         agent=callee.name)], handled_by=callee.name)
        try:
            text = str(extractor(result))
        except Exception as err:  # the user's extractor: a typed failure naming it
            raise ApplicationError(
                f"the output extractor of agent tool {tool.name!r} (agent {callee.name!r}) "
                f"raised {type(err).__name__}: {err}", type="OutputExtractorFailed",
                non_retryable=True) from None
    # The caller's tool-output guardrails see what it reads, as for a function tool.
    text = await screened(ledger, caller, tool.name, text)
    ledger.step("tool_call", caller.name, f"{tool.name}({shown}) -> {shorten(text, 120)}")
    return text


async def screened(ledger: RunLedger, agent: AgentSpec, tool: str, text: str) -> str:
    """`text`, or a withheld notice when one of the agent's tool-output guardrails trips."""
    if not agent.tool_output_guardrails:
        return text
    return await screen_tool_output(ledger, agent.tool_output_guardrails, agent.name,
                                    tool, text, judge)


async def _approval(ledger: RunLedger, agent: AgentSpec, tool: ToolDef,
                    invocation: ToolInvocation) -> ApprovalRecord | None:
    """A person's decision when the tool asks for one (always, or when its policy says
    so for these arguments); None when no decision is needed."""
    why = f"{tool.name} requires approval"
    if tool.approval == "policy":
        if not await policy_asks_a_person(tool, invocation):
            return None
        why = f"the approval policy of {tool.name} asks a person for these arguments"
    return await current_desk().ask(
        ledger, kind="tool", agent=agent.name, subject=tool.name, arguments=invocation.arguments,
        why=why, timeout_s=tool.approval_timeout_s, default=tool.approval_default)


def apply_context(context: BaseModel, changed: dict[str, Any]) -> None:
    """The fields a tool changed in the run's context, applied to the run's own object
    in the order the calls completed (recorded in history, so a replay applies the
    same)."""
    updated = type(context).model_validate({**context.model_dump(mode="json"), **changed})
    for name in changed:
        setattr(context, name, getattr(updated, name))


def function_toolbox(ledger: RunLedger, agent: AgentSpec,
                     context: BaseModel | None = None) -> Toolbox | None:
    """The agent's declared function tools, each a `run_function_tool` handler; with
    the run's `context`, which the tools may change."""
    if not agent.tools:
        return None
    tools = [ledger.run.catalogue.tools[name] for name in agent.tools]

    def handler(tool: ToolDef) -> ToolHandler:
        if tool.kind == "agent":
            return lambda call: run_agent_tool(ledger, agent, tool, call, context)
        return lambda call: run_function_tool(ledger, agent, tool, call, context)

    return Toolbox(specs=[t.spec() for t in tools],
                   handlers={t.name: handler(t) for t in tools},
                   max_turns=agent.max_tool_turns)


async def run_agent(
    ledger: RunLedger,
    agent: AgentSpec,
    messages: list[Message],
    *,
    contract: str | None = None,
    schema: dict[str, Any] | None = None,
    accept: Acceptor | None = None,
    toolbox: Toolbox | None = None,
) -> AgentReply:
    """Run `agent` on `messages`; validated output or `AgentFailed`.

    `contract` overrides the agent's own (e.g. a supervisor asked for a Review);
    `schema` overrides the contract's JSON schema (e.g. routes narrowed to an enum);
    `toolbox` overrides the agent's own function tools.
    """
    contract = contract or agent.contract
    if contract is not None and schema is None:
        schema = contract_schema(contract)
    if agent.input_guardrails:
        await _guardrails(ledger, agent.input_guardrails, "input", messages[-1].content,
                          agent.name)
    if toolbox is None:
        toolbox = function_toolbox(ledger, agent)
    if agent.mcp and toolbox is not NO_TOOLS:
        toolbox = await mcp_toolbox(ledger, agent, toolbox, TOOL_RECORDS)
    conversation = list(messages)  # grows with tool turns, kept across fallback models
    stored: StoredPrefix | None = None  # what of it the model calls need not carry again
    turns = 0
    failures: list[str] = []
    violation: str | None = None  # the latest contract problem, if that is why we failed
    for model in [agent.model, *agent.fallback_models]:
        if model != agent.model:
            ledger.step("fallback", agent.name, f"trying fallback model {model}", model=model)
        corrections: list[Message] = []
        repairs = 0
        while True:
            offered = toolbox.specs if toolbox is not None and turns < toolbox.max_turns else []
            sent = conversation + corrections
            try:
                response = await call_model_once(
                    ledger, agent, model, sent, schema=schema,
                    schema_name=schema_title(contract) if contract else None, tools=offered,
                    stored=stored)
            except ActivityError as err:
                reason = f"{model}: {describe(err)}"
                cause = err.cause
                ledger.step("error", agent.name, reason, ok=False, model=model,
                            error_type=cause.type if isinstance(cause, ApplicationError)
                            else type(cause).__name__)
                failures.append(reason)
                violation = None
                break
            if response.tool_calls and offered and toolbox is not None:
                turns += 1
                names = ", ".join(c.name for c in response.tool_calls)
                ledger.step("model_call", agent.name, f"asked for tools: {names}", model=model,
                            usage=response.usage)
                if toolbox.on_turn is not None:
                    toolbox.on_turn(turns)
                results = await toolbox.run(response.tool_calls)
                turn = assistant_turn(agent.name, response)
                if response.conversation is not None:
                    stored = StoredPrefix(response.conversation, [*sent, turn])
                conversation.append(turn)
                conversation += [Message(role="tool", tool_call_id=c.id, content=r)
                                 for c, r in zip(response.tool_calls, results, strict=True)]
                if toolbox.ends_turn():  # a handoff: the agent's turn is over
                    if model != agent.model:
                        ledger.degrade(f"{agent.name} handed off on fallback {model} after: "
                                       f"{failures[-1]}")
                    return AgentReply(agent.name, model, response.text,
                                      tool_calls=response.tool_calls, tool_turns=turns)
                if turns >= toolbox.max_turns:
                    ledger.degrade(toolbox.limit_reason.format(max_turns=toolbox.max_turns))
                    conversation.append(Message(role="user", content=(
                        "The tool limit is reached. Write the final answer now from the "
                        "results above, without calling tools.")))
                corrections = []
                continue
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
                                   tool_calls=response.tool_calls, tool_turns=turns)
                if agent.output_guardrails:
                    await _guardrails(ledger, agent.output_guardrails, "output", reply.answer,
                                      agent.name)
                if reply.answer:
                    ledger.partials.append((agent.name, reply.answer))
                return reply
            ledger.step("repair", agent.name, f"{contract} violated: {problem}", ok=False,
                        model=model, usage=response.usage)
            failures.append(f"{model}: {contract} violated: {problem}")
            violation = problem
            if repairs >= agent.max_repairs:
                break
            repairs += 1
            corrections += [
                Message(role="assistant", content=response.text, agent=agent.name),
                Message(role="user", content=(
                    f"Your reply did not match the {contract} schema: {problem}\n"
                    "Reply again with only JSON that matches the schema.")),
            ]
    if violation is not None and contract is not None:
        raise ContractViolation(agent.name, contract, violation)
    raise AgentFailed(agent.name, "; ".join(failures[-3:]))


async def judge(ledger: RunLedger, agent: AgentSpec, request: Message,
                contract: str) -> BaseModel:
    """A guardrail's judge agent answering one request, without tools
    (workflows/guardrails.py `Judge`)."""
    reply = await run_agent(ledger, agent, [request], contract=contract, toolbox=NO_TOOLS)
    assert reply.output is not None  # a contract was asked for, and run_agent validated it
    return reply.output


class _ToolRecords:
    """tool_result and tool_failure, as MCP tool handlers record their calls."""

    result = staticmethod(tool_result)
    failure = staticmethod(tool_failure)


TOOL_RECORDS = _ToolRecords()


async def _guardrails(ledger: RunLedger, names: Sequence[str], where: Literal["input", "output"],
                      text: str, agent: str) -> None:
    await check_guardrails(ledger, names, where, text, agent, judge)


def _check(contract: str, response: ModelResponse,
           accept: Acceptor | None) -> tuple[str | None, BaseModel | None]:
    """(problem, validated output): exactly one is None."""
    if response.parsed is None:
        return f"not a JSON object: {shorten(response.text, 80)!r}", None
    try:
        value = contract_model(contract).model_validate(response.parsed)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or contract
        return f"{where}: {first['msg']} ({err.error_count()} error(s))", None
    if accept is not None and (reason := accept(value)) is not None:
        return reason, None
    return None, value
