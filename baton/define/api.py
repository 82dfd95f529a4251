"""The Python API: agents and teams built in code, and `run`/`start`/`worker` over Temporal.

An `Agent` or a team object is a builder for the same specs a TOML catalogue
describes: `catalogue()` turns it (with everything it reaches) into a
`Catalogue`, and a run takes the one road every run takes
(`baton.runtime.launch.start_run` -> pattern workflow -> `run_agent` -> activities).
There is no second code path for Python-built teams.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel
from temporalio import workflow

from baton.core.catalogue_check import validate_catalogue
from baton.core.contracts import GuardrailVerdict, register_contract
from baton.core.guardrails import BUILTIN_GUARDRAILS, TRIPWIRES, Guardrail
from baton.core.handoffs import (
    DEFAULT_MAX_HANDOFFS,
    HANDOFF_HOOKS,
    INPUT_FILTERS,
    HandoffHook,
    InputFilter,
)
from baton.core.mcp import MCPServer, MCPServerUse
from baton.core.model_io import Message
from baton.core.runs import RunResult
from baton.core.specs import GATES, AgentSpec, Catalogue, RetrySpec
from baton.core.steps import client_run, workflow_steps
from baton.core.team_hooks import (
    PLANS,
    REDUCERS,
    STAGE_INPUTS,
    SYNTHESIZER_PROMPTS,
    Finding,
    StageContext,
    register,
)
from baton.core.tools import AGENT_TOOL_EXTRACTORS, Tool, ToolDef
from baton.define.flows import AgentResult

if TYPE_CHECKING:
    pass

T = TypeVar("T", bound=BaseModel)


class Member:
    """An agent or a team: something a run, a handoff or a team can name."""

    name: str

    def members(self) -> list[Member]:
        """The agents and teams this one refers to directly."""
        return []

    def tools(self) -> list[Tool]:
        return []

    def agent_tools(self) -> list[AgentTool]:
        """Agents this member calls as tools (agent.as_tool())."""
        return []

    def guardrails(self) -> list[Guardrail | Agent]:
        """Function guardrails and guardrail agents this member names."""
        return []

    def output_model(self, result: RunResult | None = None) -> type[BaseModel] | None:
        """The model of the structured output a run of this member returns, if any."""
        return None

    def spec_entry(self) -> tuple[Literal["agents", "teams"], dict[str, Any]]:
        raise NotImplementedError

    async def run(self, input: str | Sequence[Message], **options: Any) -> Any:
        """Run this member: inside a workflow (a flow, or yours through BatonPlugin) as
        a durable step whose result is the team's typed result; elsewhere as a durable
        run started through the client (keywords as `baton.run`), its `RunOutcome`."""
        if workflow.in_workflow():
            return await workflow_steps().member(self, input)
        return await client_run()(self, input, **options)

    def catalogue(self) -> Catalogue:
        """This member and everything it reaches, as a validated catalogue."""
        agents: dict[str, Any] = {}
        teams: dict[str, Any] = {}
        tools: dict[str, Tool | AgentTool] = {}
        guardrails: dict[str, Any] = {}
        seen: dict[str, Member] = {}
        stack: list[Member] = [self]
        while stack:
            member = stack.pop()
            known = seen.get(member.name)
            if known is member:
                continue
            if known is not None:
                raise ValueError(f"two different agents or teams are named {member.name!r}; "
                                 "names must be unique within a run")
            seen[member.name] = member
            kind, spec = member.spec_entry()
            (agents if kind == "agents" else teams)[member.name] = spec
            offered: list[Tool | AgentTool] = [*member.tools(), *member.agent_tools()]
            for tool in offered:
                if tools.setdefault(tool.name, tool) is not tool:
                    raise ValueError(f"two different tools are named {tool.name!r}")
            for guard in member.guardrails():
                if isinstance(guard, Agent):
                    guardrails[guard.name] = {"name": guard.name, "kind": "agent",
                                              "agent": guard.name}
                    stack.append(guard)
                elif guard.name not in BUILTIN_GUARDRAILS:
                    guardrails[guard.name] = guard.definition.model_dump()
            stack.extend(member.members())
        return validate_catalogue({
            "agents": agents, "teams": teams, "guardrails": guardrails,
            "tools": {name: t.definition.model_dump() for name, t in tools.items()}},
            source=f"{type(self).__name__} {self.name!r}")

    def __repr__(self) -> str:
        return f"<baton.{type(self).__name__} {self.name}>"


class AgentTool:
    """An agent offered to other agents as a tool (`agent.as_tool(...)`)."""

    def __init__(self, agent: Agent, name: str, description: str,
                 output_extractor: Callable[[AgentResult[Any]], str] | None) -> None:
        self.agent = agent
        self.name = name
        self.output_extractor = output_extractor
        self.definition = ToolDef(
            name=name, description=description, kind="agent", agent=agent.name,
            parameters={"type": "object", "required": ["input"], "properties": {
                "input": {"type": "string",
                          "description": f"What to ask {agent.name}, in full"}}})
        if output_extractor is not None:
            # Code, not data: found by the tool's name in the worker's process.
            AGENT_TOOL_EXTRACTORS[name] = output_extractor

    def __repr__(self) -> str:
        return f"<baton.agent_tool {self.name} -> {self.agent.name}>"


class Agent(Member):
    """One agent: a model with instructions, tools, an output contract and limits.

    Every field of a catalogue's `[agents.NAME]` table is a keyword here, with the
    same name; `tools` takes `@baton.tool` functions, `output` a pydantic model,
    `handoffs` other agents or teams (or `baton.handoff(target, ...)` for one with
    an input filter, a hook or a description of its own).
    """

    output: type[BaseModel] | None

    def __init__(self, name: str, instructions: str | Callable[[Any], str], *,
                 model: str = "offline:fast",
                 description: str = "", tools: Sequence[Tool] = (),
                 output: type[BaseModel] | None = None,
                 handoffs: Sequence[Member | Handoff] = (),
                 default_handoff: Member | None = None, fallback_models: Sequence[str] = (),
                 timeout_s: float = 60.0, heartbeat_s: float = 10.0,
                 retry: RetrySpec | dict[str, Any] | None = None,
                 max_output_tokens: int = 1024, temperature: float | None = None,
                 max_repairs: int = 2, max_tool_turns: int = 8,
                 input_guardrails: Sequence[Guardrail | Agent] = (),
                 output_guardrails: Sequence[Guardrail | Agent] = (),
                 tool_output_guardrails: Sequence[Guardrail | Agent] = (),
                 tripwire: Callable[[Any], bool] | None = None,
                 mcp: Sequence[MCPServer | MCPServerUse] = ()) -> None:
        # What clone() starts from: every keyword as given.
        self._keywords: dict[str, Any] = {
            "name": name, "instructions": instructions, "model": model,
            "description": description, "tools": tools, "output": output,
            "handoffs": handoffs, "default_handoff": default_handoff,
            "fallback_models": fallback_models, "timeout_s": timeout_s,
            "heartbeat_s": heartbeat_s, "retry": retry, "max_output_tokens": max_output_tokens,
            "temperature": temperature, "max_repairs": max_repairs,
            "max_tool_turns": max_tool_turns, "input_guardrails": input_guardrails,
            "output_guardrails": output_guardrails,
            "tool_output_guardrails": tool_output_guardrails, "tripwire": tripwire,
            "mcp": mcp}
        self.name = name
        if tripwire is not None:
            # Used as a guardrail, this agent answers its own `output`; the function says
            # from that answer whether the guardrail trips (True: it trips).
            if output is None:
                raise TypeError(f"agent {name!r}: tripwire= reads the agent's own output; "
                                "give it output=YourModel")
            TRIPWIRES[name] = tripwire
        # Instructions made per run from its context (agent.run(context=...)).
        self.instructions_for = instructions if callable(instructions) else None
        if callable(instructions):
            instructions = (inspect.getdoc(instructions)
                            or f"(instructions made per run by {instructions.__name__})")
        self._guardrails = [*input_guardrails, *output_guardrails, *tool_output_guardrails]
        for item in tools:
            if not isinstance(item, Tool | AgentTool):
                raise TypeError(f"agent {name!r}: tools must be @baton.tool functions or "
                                f"agent.as_tool(); got {item!r} (decorate it with @baton.tool)")
        for role, items, kinds, what in (
                ("handoffs", [*handoffs, *([default_handoff] if default_handoff else [])],
                 (Member, Handoff), "agents or teams (the objects, not their names), or "
                 "baton.handoff(...)"),
                ("guardrails", self._guardrails, (Guardrail, Agent),
                 "@baton.guardrail functions, baton.core.guardrails.pii or judge agents")):
            for given in items:
                if not isinstance(given, kinds):
                    raise TypeError(f"agent {name!r}: {role} must be {what}; got {given!r}")
        for judge in self._guardrails:
            if (isinstance(judge, Agent) and judge.output not in (None, GuardrailVerdict)
                    and judge.name not in TRIPWIRES):
                raise TypeError(
                    f"agent {name!r}: guardrail agent {judge.name!r} answers "
                    f"{judge.output.__name__}, not GuardrailVerdict: give it "
                    "tripwire=fn (True when that answer should trip the guardrail)")
        for server in mcp:
            if not isinstance(server, MCPServer | MCPServerUse):
                raise TypeError(f"agent {name!r}: mcp takes baton.MCPServer objects (or "
                                f"server.only(...)); got {server!r}")
        # Declared on the worker that runs this agent (baton.worker); a run names them.
        self._mcp = [u.server if isinstance(u, MCPServerUse) else u for u in mcp]
        self._tools = [t for t in tools if isinstance(t, Tool)]
        self._agent_tools = [t for t in tools if isinstance(t, AgentTool)]
        self.output = output
        self._handoffs = [h.target if isinstance(h, Handoff) else h for h in handoffs]
        contract = register_contract(output) if output is not None else None
        self.spec = AgentSpec.model_validate({
            "name": name, "instructions": instructions, "model": model,
            "description": description, "tools": [t.name for t in tools],
            "contract": contract, "handoffs": [h.name for h in self._handoffs],
            "handoff_options": {h.target.name: h.options(name) for h in handoffs
                                if isinstance(h, Handoff)},
            "default_handoff": default_handoff.name if default_handoff else None,
            "fallback_models": list(fallback_models), "timeout_s": timeout_s,
            "heartbeat_s": heartbeat_s, "retry": retry or RetrySpec(),
            "max_output_tokens": max_output_tokens, "temperature": temperature,
            "max_repairs": max_repairs, "max_tool_turns": max_tool_turns,
            "input_guardrails": [g.name for g in input_guardrails],
            "output_guardrails": [g.name for g in output_guardrails],
            "tool_output_guardrails": [g.name for g in tool_output_guardrails],
            "mcp": [u.use().model_dump() for u in mcp]})

    def members(self) -> list[Member]:
        return [*self._handoffs, *(t.agent for t in self._agent_tools)]

    def as_tool(self, name: str | None = None, description: str | None = None,
                output_extractor: Callable[[AgentResult[Any]], str] | None = None
                ) -> AgentTool:
        """This agent as a tool any agent may call (`tools=[...]`): the caller's model asks
        it one question (`input`) and reads its answer, or what `output_extractor` makes
        of it. It runs in the caller's workflow with its own model, tools and limits."""
        return AgentTool(self, name or self.name, description or self.spec.description
                         or f"Ask the {self.name} agent.", output_extractor)

    async def run(self, input: str | Sequence[Message], *,
                  output: type[BaseModel] | None = None, model: str | None = None,
                  isolated: bool = False, context: BaseModel | None = None,
                  max_handoffs: int = DEFAULT_MAX_HANDOFFS,
                  **options: Any) -> AgentResult[Any]:
        """Run this agent on `input` (a string or a conversation).

        Inside a workflow it is a durable step of that run: one activity per model or
        tool call, with this agent's timeouts, retries, breakers, fallbacks, contract
        repair, guardrails and the run's budget; `isolated=True` runs it as a child
        workflow instead (its own history). Elsewhere it starts a durable run through
        the client (keywords as `baton.run`) and waits for it. `output` asks for
        another pydantic model than the agent's own; `model` replaces its model.
        An agent with `handoffs` may hand the conversation on (at most `max_handoffs`
        times); `.handled_by` says who answered, `.output` is that agent's.
        """
        if workflow.in_workflow():
            stepped: AgentResult[Any] = await workflow_steps().agent(
                self, input, output=output, model=model, isolated=isolated, context=context,
                max_handoffs=max_handoffs)
            return stepped
        if context is not None or self.instructions_for is not None:
            raise TypeError(f"agent {self.name!r}: a run context (and instructions made from "
                            "it) needs a durable run: call agent.run(...) inside a "
                            "@baton.flow or a workflow with BatonPlugin")
        if output is not None:
            return await self.clone(output=output).run(input, model=model,
                                                       max_handoffs=max_handoffs, **options)
        # Its handoffs are followed by a triage it leads (a run of its own, like any).
        led: Member = (Triage(f"{self.name[:80]}-handoffs", self, max_handoffs=max_handoffs)
                       if self._handoffs else self)
        outcome = await client_run()(led, input, model=model, **options)
        messages = ([Message(role="user", content=input)] if isinstance(input, str)
                    else list(input))
        handled_by = getattr(outcome.result, "handled_by", "") or self.name
        return AgentResult(
            output=outcome.output if outcome.output is not None else outcome.answer,
            text=outcome.answer, usage=outcome.usage, handled_by=handled_by,
            messages=[*messages, Message(role="assistant", content=outcome.answer,
                                         agent=handled_by)])

    def add_handoffs(self, *targets: Member | Handoff) -> Agent:
        """More handoff targets, declared after the agent is made: how agents that hand
        the conversation to each other are written (a router's specialists hand back
        to it). Call it before the agent first runs; returns the agent."""
        made = self.clone(handoffs=[*self._keywords["handoffs"], *targets])
        self._keywords, self._handoffs, self.spec = made._keywords, made._handoffs, made.spec
        return self

    def clone(self, **changes: Any) -> Agent:
        """A variant of this agent with some keywords replaced (same name unless given),
        e.g. `agent.clone(instructions=..., model=...)` for one run."""
        keywords = {**self._keywords, **changes}
        return Agent(keywords.pop("name"), keywords.pop("instructions"), **keywords)

    def tools(self) -> list[Tool]:
        return list(self._tools)

    def mcp_servers(self) -> list[MCPServer]:
        """The MCP servers whose tools this agent is offered."""
        return list(self._mcp)

    def agent_tools(self) -> list[AgentTool]:
        return list(self._agent_tools)

    def guardrails(self) -> list[Guardrail | Agent]:
        return list(self._guardrails)

    def output_model(self, result: RunResult | None = None) -> type[BaseModel] | None:
        return self.output

    def spec_entry(self) -> tuple[Literal["agents", "teams"], dict[str, Any]]:
        return "agents", self.spec.model_dump(exclude={"name"})


class Team(Member):
    """A pattern wiring agents or other teams together."""

    def __init__(self, name: str, spec: dict[str, Any], members: Sequence[Member],
                 answerer: Member | None) -> None:
        self.name = name
        self._spec = spec
        self._members = list(members)
        self._answerer = answerer
        self._guardrails: list[Guardrail | Agent] = []

    def members(self) -> list[Member]:
        return list(self._members)

    def guardrails(self) -> list[Guardrail | Agent]:
        return list(self._guardrails)

    def guarded(self, *, input: Sequence[Guardrail | Agent] = (),
                output: Sequence[Guardrail | Agent] = ()) -> Team:
        """This team with guardrails on its run's input and on its answer."""
        self._spec["input_guardrails"] = [g.name for g in input]
        self._spec["output_guardrails"] = [g.name for g in output]
        self._guardrails = [*input, *output]
        return self

    def output_model(self, result: RunResult | None = None) -> type[BaseModel] | None:
        answerer = self._answerer
        handled_by = getattr(result, "handled_by", None)
        if handled_by:  # triage: whoever the router handed the conversation to
            answerer = next((m for m in self._members if m.name == handled_by), None)
            if answerer is None:
                answerer = next((m for m in _reach(self) if m.name == handled_by), None)
        return answerer.output_model(None) if answerer is not None else None

    def spec_entry(self) -> tuple[Literal["agents", "teams"], dict[str, Any]]:
        return "teams", dict(self._spec)


def _reach(member: Member) -> list[Member]:
    found: list[Member] = []
    stack = [member]
    while stack:
        current = stack.pop()
        if current in found:
            continue
        found.append(current)
        stack.extend(current.members())
    return found


def _expect(team: str, role: str, given: object, kind: type | tuple[type, ...],
            what: str, many: bool = False) -> None:
    """Refuse, with a message naming the role and what it takes, anything but `kind`
    (a name in place of the object, most often)."""
    items: list[object] = ([given] if not many or isinstance(given, str | bytes)
                           or not isinstance(given, Iterable) else list(given))
    for item in items:
        if not isinstance(item, kind):
            raise TypeError(f"team {team!r}: {role} must be {what} (the objects, not their "
                            f"names); got {item!r}")


_MEMBERS = "agents or teams"


def Triage(name: str, router: Agent, *, nest_handoff_history: bool = False,
           description: str = "", max_handoffs: int = DEFAULT_MAX_HANDOFFS) -> Team:
    """A router agent hands the conversation to one of its declared `handoffs`, or
    answers itself; specialists with handoffs of their own may hand it on (back to the
    router, to a peer), at most `max_handoffs` times per run."""
    _expect(name, "router", router, Agent, "an Agent")
    return Team(name, {"pattern": "triage", "router": router.name, "description": description,
                       "nest_handoff_history": nest_handoff_history,
                       "max_handoffs": max_handoffs}, [router], None)


@dataclass(frozen=True)
class Handoff:
    """A handoff target with options of its own, for `Agent(handoffs=[...])`."""

    target: Member
    input_filter: InputFilter | None = None
    on_handoff: HandoffHook | None = None
    description: str | None = None

    def options(self, agent: str) -> dict[str, Any]:
        """Its spec in agent `agent`'s handoff_options; its functions are registered
        on this process under "agent/target" (a run names them)."""
        key = f"{agent}/{self.target.name}"
        where = f"agent {agent!r}: the handoff to {self.target.name!r}"
        return {"description": self.description,
                "input_filter": (register(INPUT_FILTERS, key, self.input_filter,
                                          f"{where}: input_filter")
                                 if self.input_filter is not None else None),
                "on_handoff": (register(HANDOFF_HOOKS, key, self.on_handoff,
                                        f"{where}: on_handoff")
                               if self.on_handoff is not None else None)}


def handoff(target: Member, *, input_filter: InputFilter | None = None,
            on_handoff: HandoffHook | None = None, description: str | None = None) -> Handoff:
    """`target` as a handoff with options, for `Agent(handoffs=[...])`.

    `input_filter(messages) -> messages` decides what the target sees (e.g.
    `baton.nest_history`); `on_handoff(context, reason)` is told of the handoff and may
    return a changed run context (the same model; None keeps it); `description` is what
    the transfer tool tells the model instead of the target's own description. Both
    functions run inside the workflow: keep them deterministic (no I/O, clock or
    random numbers).
    """
    if not isinstance(target, Member):
        raise TypeError(f"handoff target must be an agent or a team (the object, not its "
                        f"name); got {target!r}")
    for role, function in (("input_filter", input_filter), ("on_handoff", on_handoff)):
        if function is not None and not callable(function):
            raise TypeError(f"handoff to {target.name!r}: {role} must be a function; got "
                            f"{function!r}")
    return Handoff(target, input_filter, on_handoff, description)


# A planner's own model -> its subtasks (strings for the team's one member, or
# baton.Subtask items naming the member); the synthesizer's prompt from the request
# and every branch's finding; the reducer merging the findings into text.
PlanFunction = Callable[[Any], Sequence[Any]]
SynthesizerPrompt = Callable[[str, list[Finding]], str]
Reducer = Callable[[list[Finding]], str]


def FanOut(name: str, *, synthesizer: Agent, branches: Sequence[Member] = (),
           planner: Agent | None = None, members: Sequence[Member] = (),
           map_member: Member | None = None, max_branches: int = 8,
           policy: Literal["all", "quorum", "best_effort"] = "all", quorum: int | None = None,
           description: str = "", plan: PlanFunction | str | None = None,
           synthesizer_prompt: SynthesizerPrompt | None = None,
           reducer: Reducer | None = None) -> Team:
    """Branches in parallel, each its own child workflow, then a synthesizer's answer.

    `branches` each get the request; with a `planner`, a coordinator splits the
    request into subtasks for `members` (see `Coordinator`); with `map_member`, one
    branch per item the caller passes (see `Map`). A planner answers `baton.Plan`
    unless it has a model of its own (`output=`): then `plan` maps that model to
    subtasks, as a function or as the name of a list-of-strings field.
    `synthesizer_prompt(request, findings)` writes the synthesizer's prompt and
    `reducer(findings)` the merged findings (also the answer if the synthesizer
    fails); both run inside the workflow, so keep them deterministic.
    """
    _expect(name, "synthesizer", synthesizer, Agent, "an Agent")
    _expect(name, "branches", branches, Member, _MEMBERS, many=True)
    _expect(name, "members", members, Member, _MEMBERS, many=True)
    _expect(name, "planner", planner, (Agent, type(None)), "an Agent")
    _expect(name, "map_member", map_member, (Member, type(None)), "an agent or a team")
    if plan is not None and not (callable(plan) or isinstance(plan, str)):
        raise TypeError(f"team {name!r}: plan must be a function of the planner's output "
                        f"or the name of its list field; got {plan!r}")
    spec = {"pattern": "fanout", "description": description,
            "branches": [b.name for b in branches], "synthesizer": synthesizer.name,
            "planner": planner.name if planner else None, "members": [m.name for m in members],
            "map_member": map_member.name if map_member else None,
            "max_branches": max_branches, "policy": policy, "quorum": quorum,
            "plan": (register(PLANS, f"{name}/plan", plan, f"team {name!r}: plan")
                     if callable(plan) else None),
            "plan_field": plan if isinstance(plan, str) else None,
            "synthesizer_prompt": (
                register(SYNTHESIZER_PROMPTS, f"{name}/synthesizer_prompt", synthesizer_prompt,
                         f"team {name!r}: synthesizer_prompt")
                if synthesizer_prompt is not None else None),
            "reducer": (register(REDUCERS, f"{name}/reducer", reducer,
                                 f"team {name!r}: reducer") if reducer is not None else None)}
    everyone: list[Member] = [*branches, *members, synthesizer]
    everyone += [m for m in (planner, map_member) if m is not None]
    return Team(name, spec, everyone, synthesizer)


def Coordinator(name: str, *, planner: Agent, members: Sequence[Member],
                synthesizer: Agent, max_branches: int = 8,
                policy: Literal["all", "quorum", "best_effort"] = "all",
                quorum: int | None = None, fallback_branches: Sequence[Member] = (),
                description: str = "", plan: PlanFunction | str | None = None,
                synthesizer_prompt: SynthesizerPrompt | None = None,
                reducer: Reducer | None = None) -> Team:
    """A coordinator that splits the work: the planner's subtasks run as parallel branches
    (`plan` maps a planner's own model to them; see `FanOut`)."""
    return FanOut(name, synthesizer=synthesizer, planner=planner, members=members,
                  branches=fallback_branches, max_branches=max_branches, policy=policy,
                  quorum=quorum, description=description, plan=plan,
                  synthesizer_prompt=synthesizer_prompt, reducer=reducer)


def Map(name: str, member: Member, *, synthesizer: Agent, max_branches: int = 100,
        policy: Literal["all", "quorum", "best_effort"] = "all", quorum: int | None = None,
        description: str = "", synthesizer_prompt: SynthesizerPrompt | None = None,
        reducer: Reducer | None = None) -> Team:
    """The same member over each item of a list the caller gives (`run(..., items=[...])`)."""
    return FanOut(name, synthesizer=synthesizer, map_member=member, max_branches=max_branches,
                  policy=policy, quorum=quorum, description=description,
                  synthesizer_prompt=synthesizer_prompt, reducer=reducer)


def Supervisor(name: str, supervisor: Agent, workers: Sequence[Member], *,
               max_rounds: int = 6, max_revisions: int = 1, approve_acceptance: bool = False,
               approval_timeout_s: float = 86_400.0,
               approval_default: Literal["approve", "reject"] = "reject",
               description: str = "", review: bool = True) -> Team:
    """A supervisor delegates to workers exposed as tools and reviews each result
    (with `approve_acceptance`, a person confirms each result it accepts; with
    `review=False` it reads each result as it is, without a review call)."""
    _expect(name, "supervisor", supervisor, Agent, "an Agent")
    _expect(name, "workers", workers, Member, _MEMBERS, many=True)
    return Team(name, {"pattern": "supervisor", "supervisor": supervisor.name,
                       "workers": [w.name for w in workers], "max_rounds": max_rounds,
                       "max_revisions": max_revisions, "description": description,
                       "approve_acceptance": approve_acceptance,
                       "approval_timeout_s": approval_timeout_s,
                       "approval_default": approval_default, "review": review},
                [supervisor, *workers], None)


@dataclass(frozen=True)
class Stage:
    """A pipeline stage with a quality gate: `gate_field` (a bool of the stage's output)
    must be true to go on, else the pipeline loops back to `loop_back_to`; `input`
    makes what the stage is given from a `baton.StageContext` (e.g. a writer sent back
    by a judge gets its previous draft, `ctx.outputs["writer"]`, and `ctx.feedback`)."""

    member: Member
    gate_field: str | None = None
    loop_back_to: Member | None = None
    # A predicate of the stage's output (its contract's model, or its text): False
    # loops back, like a false gate_field; e.g. `gate=lambda out: out.score == "pass"`.
    gate: Callable[[Any], bool] | None = None
    # A person approves the stage before it runs.
    approval: bool = False
    approval_timeout_s: float = 86_400.0
    approval_default: Literal["approve", "reject"] = "reject"
    # What the stage is given: a function of a StageContext (the request, every earlier
    # stage's output by name, the transcript, a gate's feedback) returning a prompt or
    # messages; by default the request, the previous stage's output and the feedback.
    input: Callable[[StageContext], str | list[Message]] | None = None


def Pipeline(name: str, stages: Sequence[Member | Stage], *,
             max_attempts: int = 3, description: str = "") -> Team:
    """Stages in a fixed order, each validated against its contract; gates loop back."""
    _expect(name, "stages", stages, (Member, Stage), "agents, teams or Stages", many=True)
    steps = [s if isinstance(s, Stage) else Stage(s) for s in stages]
    for step in steps:
        if step.gate is not None:
            GATES[f"{name}/{step.member.name}"] = step.gate
        if step.input is not None:
            register(STAGE_INPUTS, f"{name}/{step.member.name}", step.input,
                     f"team {name!r}: the input of stage {step.member.name!r}")
        _expect(name, "a stage's member", step.member, Member, "an agent or a team")
        _expect(name, "loop_back_to", step.loop_back_to, (Member, type(None)),
                "an agent or a team")
    spec = {"pattern": "pipeline", "max_attempts": max_attempts, "description": description,
            "stages": [{"agent": s.member.name, "gate_field": s.gate_field,
                        "gate": f"{name}/{s.member.name}" if s.gate is not None else None,
                        "input": f"{name}/{s.member.name}" if s.input is not None else None,
                        "loop_back_to": s.loop_back_to.name if s.loop_back_to else None,
                        "approval": s.approval, "approval_timeout_s": s.approval_timeout_s,
                        "approval_default": s.approval_default}
                       for s in steps]}
    return Team(name, spec, [s.member for s in steps], steps[-1].member if steps else None)
