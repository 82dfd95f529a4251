"""Agent specs, team specs and the catalogue that holds them.

A catalogue is what a user configures: agents (a model with instructions and
limits) and teams (a pattern wiring agents, or other teams, together). Anywhere a
team takes a member (a handoff target, a fan-out branch, a supervisor worker, a
pipeline stage) either an agent or a team name may stand: that is composition.

The catalogue is validated once, when loaded, and then travels inside each run's
input, so workflows read recorded configuration and never the file system.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, Field, field_validator, model_validator

from baton.core.contracts import (
    CONTRACTS,
    Plan,
    RouteDecision,
    contract_name,
    is_contract,
    resolve_contract,
)
from baton.core.guardrails import BUILTIN_GUARDRAILS, GUARDRAIL_NAME, GuardrailDef
from baton.core.handoffs import (
    DEFAULT_MAX_HANDOFFS,
    MAX_HANDOFFS_LIMIT,
    HandoffSpec,
    transfer_tool_name,
)
from baton.core.mcp import MCP_SERVER_NAME, MCPServerConfig, MCPUse
from baton.core.model_io import BUILTIN_PROVIDERS, BreakerPolicy, ModelRef, ProviderConfig
from baton.core.tools import ToolDef
from baton.core.usage import Budget, Price


class RetrySpec(BaseModel):
    """Bounded retry policy for one agent's model calls (becomes a Temporal RetryPolicy)."""

    max_attempts: int = Field(default=3, ge=1, le=20)
    initial_interval_s: float = Field(default=1.0, gt=0, le=300)
    backoff: float = Field(default=2.0, ge=1.0, le=10.0)
    max_interval_s: float = Field(default=30.0, gt=0, le=3600)


def split_model(model: str) -> tuple[str, str]:
    """'provider:model' -> (provider, model); raises ValueError naming what is accepted."""
    return tuple(ModelRef.parse(model))  # type: ignore[return-value]


class AgentSpec(BaseModel):
    """One agent: a model, its instructions, its contract and its limits."""

    name: str = ""
    description: str = ""
    instructions: str = Field(min_length=1)
    model: str = "offline:fast"
    fallback_models: list[str] = Field(default_factory=list)
    contract: str | None = None
    # Who the agent may hand the conversation to (agents or teams; each is offered as a
    # transfer tool), and where an undeclared transfer or a failed target goes.
    handoffs: list[str] = Field(default_factory=list)
    default_handoff: str | None = None
    # Per target: the transfer tool's description, an input filter, an on_handoff hook
    # (in TOML also written in place: handoffs = [{ target = "x", input_filter = ... }]).
    handoff_options: dict[str, HandoffSpec] = Field(default_factory=dict)
    max_output_tokens: int = Field(default=1024, ge=1, le=200_000)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    heartbeat_s: float = Field(default=10.0, gt=0, le=600)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    # How many times a contract violation is sent back to the model with the error.
    max_repairs: int = Field(default=2, ge=0, le=10)
    # Function tools the agent may call (names of the catalogue's tools).
    tools: list[str] = Field(default_factory=list)
    # MCP servers whose tools the agent is offered beside its own (by the names the
    # worker declares them under, optionally a filter of their tools: baton/core/mcp.py).
    mcp: list[MCPUse] = Field(default_factory=list, max_length=20)
    # Model turns that may ask for tools; then the agent must answer without them.
    max_tool_turns: int = Field(default=8, ge=1, le=100)
    # Guardrails (names of the catalogue's guardrails, or built-in "pii").
    input_guardrails: list[str] = Field(default_factory=list)
    output_guardrails: list[str] = Field(default_factory=list)
    # Checked on each function tool's result before the model reads it (a trip
    # withholds that result, or blocks the run: GuardrailDef.on_tool_output).
    tool_output_guardrails: list[str] = Field(default_factory=list)

    @property
    def guardrail_names(self) -> list[str]:
        return [*self.input_guardrails, *self.output_guardrails, *self.tool_output_guardrails]

    @field_validator("mcp")
    @classmethod
    def _servers_once(cls, uses: list[MCPUse]) -> list[MCPUse]:
        names = [use.server for use in uses]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"MCP servers named more than once: {twice}; name each once "
                             "(with one filter of its tools)")
        return uses

    @field_validator("model")
    @classmethod
    def _model_has_provider(cls, value: str) -> str:
        split_model(value)
        return value

    @field_validator("contract")
    @classmethod
    def _contract_is_resolved(cls, value: str | None) -> str | None:
        # Fixed where the spec is built: "Plan" is the user's Plan if this process has
        # one, else Baton's "baton.Plan" (see baton/core/contracts.py).
        return resolve_contract(value) if value else value

    @field_validator("fallback_models")
    @classmethod
    def _fallbacks_have_provider(cls, values: list[str]) -> list[str]:
        for value in values:
            split_model(value)
        return values

    @model_validator(mode="before")
    @classmethod
    def _handoff_tables(cls, data: Any) -> Any:
        """`handoffs` entries written as tables ({target = ..., input_filter = ...}) become
        a target name and its `handoff_options`."""
        if not isinstance(data, dict) or not isinstance(data.get("handoffs"), list):
            return data
        entries = data["handoffs"]
        if not any(isinstance(e, dict) for e in entries):
            return data
        options = dict(data.get("handoff_options") or {})
        names: list[Any] = []
        for entry in entries:
            if isinstance(entry, dict):
                entry = dict(entry)
                target = entry.pop("target", None)
                if not isinstance(target, str):
                    raise ValueError(f"a handoff written as a table needs `target`, the name "
                                     f"of an agent or team; got {entry!r}")
                options[target] = entry
                entry = target
            names.append(entry)
        return {**data, "handoffs": names, "handoff_options": options}

    @model_validator(mode="after")
    def _handoffs_are_consistent(self) -> AgentSpec:
        if not self.handoffs:
            if self.handoff_options:
                raise ValueError("handoff_options name targets of `handoffs`, which is empty")
            return self
        if is_contract(self.contract, RouteDecision):
            # How a router was declared before transfer tools: it now hands off with
            # them, and answers in text when it answers itself.
            self.contract = None
        if self.default_handoff is None:
            self.default_handoff = self.handoffs[0]
        if self.default_handoff not in self.handoffs:
            raise ValueError(f"default_handoff {self.default_handoff!r} is not one of the "
                             f"handoffs {self.handoffs}")
        if unknown := sorted(set(self.handoff_options) - set(self.handoffs)):
            raise ValueError(f"handoff_options for {unknown}, which are not among the "
                             f"handoffs {self.handoffs}")
        tools = [transfer_tool_name(t) for t in self.handoffs]
        if clash := sorted({t for t in tools if tools.count(t) > 1 or t in self.tools}):
            raise ValueError(f"handoffs {self.handoffs} make the transfer tools {clash} twice "
                             "(or a tool of the agent has that name); rename one")
        return self


class Guarded(BaseModel):
    """Guardrails on a team's run: its input before anything runs, its answer at the end."""

    input_guardrails: list[str] = Field(default_factory=list)
    output_guardrails: list[str] = Field(default_factory=list)

    @property
    def guardrail_names(self) -> list[str]:
        return [*self.input_guardrails, *self.output_guardrails]


class TriageTeam(Guarded):
    """A router agent hands the conversation to one of its declared handoffs (who may
    hand it on), or answers itself."""

    pattern: Literal["triage"] = "triage"
    description: str = ""
    router: str
    # Replace prior history with one summary message when handing off.
    nest_handoff_history: bool = False
    # Transfers one run may make (the router's, and every agent's after it); cycles
    # between agents are allowed up to this bound, then the run stops (a budget stop).
    max_handoffs: int = Field(default=DEFAULT_MAX_HANDOFFS, ge=1, le=MAX_HANDOFFS_LIMIT)


class FanOutTeam(Guarded):
    """Branches run in parallel as child workflows; a synthesizer writes the answer.

    Three ways to make the branches: `branches` (every member gets the request),
    `planner` (a coordinator agent splits the request into at most `max_branches`
    subtasks, each for one of `members`; `branches`, if given, are the fallback
    when planning fails), or `map_member` (one branch per item the caller gives).
    A planner answers `baton.Plan`, or a model of its own that `plan` (a function's
    name, in baton.core.team_hooks.PLANS) or `plan_field` (a list-of-strings field, each
    string a subtask for the one member) turns into subtasks.
    """

    pattern: Literal["fanout"] = "fanout"
    description: str = ""
    branches: list[str] = Field(default_factory=list, max_length=2000)
    planner: str | None = None
    plan: str | None = Field(default=None, max_length=200)
    plan_field: str | None = Field(default=None, max_length=200)
    members: list[str] = Field(default_factory=list)
    map_member: str | None = None
    max_branches: int = Field(default=8, ge=1, le=2000)
    # How a single-agent branch runs: its own child workflow, or an agent call (its
    # model calls are activities, retried and recorded one by one) inside the fan-out
    # or its shard. "auto": children up to the shard size, activities above it, where
    # a child per branch costs the server most. A team branch is always a child.
    branch_runs: Literal["child", "activity", "auto"] = "auto"
    synthesizer: str
    # Functions of the worker's, by name (baton.core.team_hooks): the synthesizer's prompt
    # from (request, findings), and the reducer that merges the findings into text.
    synthesizer_prompt: str | None = Field(default=None, max_length=200)
    reducer: str | None = Field(default=None, max_length=200)
    policy: Literal["all", "quorum", "best_effort"] = "all"
    quorum: int | None = Field(default=None, ge=1)

    @property
    def mode(self) -> Literal["static", "planned", "map"]:
        if self.map_member is not None:
            return "map"
        return "planned" if self.planner is not None else "static"

    @model_validator(mode="after")
    def _branches_are_defined(self) -> FanOutTeam:
        if self.planner is not None and self.map_member is not None:
            raise ValueError("a fan-out has a planner or a map_member, not both")
        if self.planner is not None and not self.members:
            raise ValueError("a planned fan-out needs `members` its subtasks may go to")
        if self.planner is None and (self.plan or self.plan_field):
            raise ValueError("`plan` and `plan_field` read a planner's answer; this fan-out "
                             "has no `planner`")
        if self.plan and self.plan_field:
            raise ValueError("a fan-out maps its planner's answer with `plan` (a function) "
                             "or `plan_field` (a field), not both")
        if self.plan_field and len(self.members) != 1:
            raise ValueError(f"plan_field {self.plan_field!r} gives subtasks as text, each "
                             f"for the one member; this fan-out has members {self.members} "
                             "(give one, or a plan function returning baton.Subtask items)")
        if self.mode == "static" and not self.branches:
            raise ValueError("a fan-out needs `branches`, a `planner` with `members`, "
                             "or a `map_member`")
        if self.policy == "quorum":
            if self.quorum is None:
                self.quorum = len(self.branches) // 2 + 1 if self.mode == "static" else 1
            if self.mode == "static" and self.quorum > len(self.branches):
                raise ValueError(
                    f"quorum {self.quorum} exceeds the {len(self.branches)} branches"
                )
        return self


class SupervisorTeam(Guarded):
    """A supervisor delegates to workers exposed as tools and reviews each result."""

    pattern: Literal["supervisor"] = "supervisor"
    description: str = ""
    supervisor: str
    workers: list[str] = Field(min_length=1)
    max_rounds: int = Field(default=6, ge=1, le=50)
    max_revisions: int = Field(default=1, ge=0, le=10)
    # False: delegate without a review call; the supervisor reads each result as it is.
    review: bool = True
    # A person confirms each result the supervisor accepts; a rejection is a revision.
    approve_acceptance: bool = False
    approval_timeout_s: float = Field(default=86_400.0, gt=0, le=365 * 86_400)
    approval_default: Literal["approve", "reject"] = "reject"


# Stage gates that are functions, by "team/stage" (baton.Stage(gate=fn)): code, found
# in the worker's process.
GATES: dict[str, Callable[[Any], bool]] = {}


class StageSpec(BaseModel):
    """One pipeline stage: an agent (validated against its contract) or a team."""

    agent: str
    # A boolean field of this stage's output that must be true to go on (a judge gate).
    gate_field: str | None = None
    # Or a predicate of the stage's output, by the name it is registered under on the
    # worker (baton.Stage(gate=fn)): code stays the worker's, a run only names it.
    gate: str | None = Field(default=None, max_length=200)
    # What the stage is given, made by a function of the worker's from the request,
    # earlier outputs, the transcript and a gate's feedback (baton.Stage(input=fn),
    # by name: baton.core.team_hooks.STAGE_INPUTS); by default the request, the previous
    # stage's output and the feedback.
    input: str | None = Field(default=None, max_length=200)
    # Stage to send the failure reason back to; defaults to this stage.
    loop_back_to: str | None = None
    # A person approves the stage before it runs (it sees the stage's input).
    approval: bool = False
    approval_timeout_s: float = Field(default=86_400.0, gt=0, le=365 * 86_400)
    approval_default: Literal["approve", "reject"] = "reject"


class PipelineTeam(Guarded):
    """Stages in a fixed order, each validated against its contract, gates that loop back."""

    pattern: Literal["pipeline"] = "pipeline"
    description: str = ""
    stages: list[StageSpec] = Field(min_length=1)
    max_attempts: int = Field(default=3, ge=1, le=20)

    @model_validator(mode="after")
    def _loop_backs_go_backwards(self) -> PipelineTeam:
        seen: list[str] = []
        for stage in self.stages:
            seen.append(stage.agent)
            if stage.loop_back_to is not None and stage.loop_back_to not in seen:
                raise ValueError(
                    f"stage {stage.agent!r} loops back to {stage.loop_back_to!r}, which is not "
                    f"this stage or an earlier one ({seen})"
                )
        return self


# An agent's or team's name is also a search attribute's value (BatonTeam: at most
# 2048 bytes, as JSON) and part of child workflow ids: keep it short.
MAX_NAME_CHARS = 100
MemberName = Annotated[str, Field(max_length=MAX_NAME_CHARS)]

TeamSpec = Annotated[
    TriageTeam | FanOutTeam | SupervisorTeam | PipelineTeam, Field(discriminator="pattern")
]


class Catalogue(BaseModel):
    """Every agent and team a run may use, checked for dangling and circular references."""

    # Named endpoints: read by the worker from the operator's catalogue; a client's
    # copy only checks its model names, and runs never carry it (closure() drops it).
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    agents: dict[MemberName, AgentSpec]
    # MCP servers by name ([mcp.NAME] tables): like providers, the worker's own
    # configuration, read by worker.py --catalogue; runs never carry it (closure()
    # drops it) and may only name a server (AgentSpec.mcp).
    mcp: dict[Annotated[str, Field(pattern=MCP_SERVER_NAME)], MCPServerConfig] = Field(
        default_factory=dict)
    # Function tools by name (from @baton.tool in the modules the catalogue names).
    tools: dict[str, ToolDef] = Field(default_factory=dict)
    # Guardrails by name besides the built-in "pii" (functions from the modules the
    # catalogue names, or agents that answer a GuardrailVerdict).
    # Keyed by the guardrail's name, which must fit GuardrailDef.name's pattern (the
    # key becomes the name, and a run's input is validated again on the worker).
    guardrails: dict[Annotated[str, Field(pattern=GUARDRAIL_NAME)], GuardrailDef] = Field(
        default_factory=dict)
    teams: dict[MemberName, TeamSpec] = Field(default_factory=dict)
    # USD per million tokens by "provider:model" (see baton/core/pricing.py).
    prices: dict[str, Price] = Field(default_factory=dict)
    # Circuit breaker thresholds by "provider:model"; "default" for every other model.
    breakers: dict[str, BreakerPolicy] = Field(default_factory=dict)
    # Each run's budget unless the starter's --budget-* flags say otherwise.
    budget: Budget = Field(default_factory=Budget)

    @field_validator("prices", "breakers")
    @classmethod
    def _keys_are_models(cls, table: dict[str, BaseModel]) -> dict[str, BaseModel]:
        for model in table:
            if model != "default":
                split_model(model)
        return table

    @model_validator(mode="after")
    def _references_resolve(self) -> Catalogue:
        for name, agent in self.agents.items():
            agent.name = name
        for name, guard in self.guardrails.items():
            guard.name = name
        clash = sorted(set(self.agents) & set(self.teams))
        if clash:
            raise ValueError(f"names used for both an agent and a team: {clash}")
        for agent in self.agents.values():
            for target in agent.handoffs:
                self._require_member(target, f"agent {agent.name!r} hands off to")
                if target == agent.name:
                    raise ValueError(f"agent {agent.name!r} hands off to itself; it answers "
                                     "itself without a handoff")
            for tool in agent.tools:
                if tool not in self.tools:
                    known = ", ".join(sorted(self.tools)) or "none"
                    raise ValueError(
                        f"agent {agent.name!r} names unknown tool {tool!r}; known tools: "
                        f"{known} (tools are @baton.tool functions of a module given with "
                        "--app or the catalogue's `app`)")
                definition = self.tools[tool]
                if definition.kind == "agent":
                    self._require_agent(definition.agent or "",
                                        f"agent {agent.name!r}'s tool {tool!r}")
        for name, team in self.teams.items():
            for role, member, agent_only in _team_references(team):
                where = f"team {name!r} ({role})"
                if agent_only:
                    self._require_agent(member, where)
                else:
                    self._require_member(member, where)
            if isinstance(team, FanOutTeam) and team.planner is not None:
                self._check_planner(name, team)
            if isinstance(team, PipelineTeam):
                for stage in team.stages:
                    self._check_gate(name, stage)
            if isinstance(team, TriageTeam) and not self.agents[team.router].handoffs:
                raise ValueError(f"team {name!r}: router {team.router!r} declares no handoffs")
        for name, guarded in [*self.agents.items(), *self.teams.items()]:
            for guard_name in guarded.guardrail_names:
                self._require_guardrail(guard_name, name)
        for name in self.teams:
            self._reject_cycle(name, [])
            self._reject_handoff_loop(name)
        for name in self.agents:
            self._reject_agent_tool_cycle(name, [])
        return self

    def _reject_agent_tool_cycle(self, name: str, path: list[str]) -> None:
        """An agent that reaches itself through agents offered as tools would call
        itself without end."""
        if name in path:
            cycle = [*path[path.index(name):], name]
            raise ValueError(f"agents call themselves through agent tools: "
                             f"{' -> '.join(cycle)}")
        for tool in self.agents[name].tools:
            definition = self.tools.get(tool)
            if definition is not None and definition.kind == "agent" and definition.agent:
                self._reject_agent_tool_cycle(definition.agent, [*path, name])

    def unknown_providers(self) -> list[str]:
        """Models whose provider neither is built in nor declared here.

        Checked where a catalogue is loaded, not when a run's input is decoded: a run
        carries no providers (they are the worker's), so its models name providers
        the worker resolves, and refuses with `UnknownProvider` when it has none.
        """
        known = sorted({*BUILTIN_PROVIDERS, *self.providers})
        return [f"agent {agent.name!r}: unknown model provider {provider!r} in {model!r}; "
                f"accepted: {', '.join(known)} (a provider of your own is declared in a "
                "[providers.NAME] table of the worker's catalogue and of yours)"
                for agent in self.agents.values()
                for model in [agent.model, *agent.fallback_models]
                if (provider := split_model(model)[0]) not in known]

    def guardrail(self, name: str) -> GuardrailDef:
        return self.guardrails.get(name) or BUILTIN_GUARDRAILS[name].definition

    def _require_guardrail(self, name: str, owner: str) -> None:
        if name in BUILTIN_GUARDRAILS:
            return
        guard = self.guardrails.get(name)
        if guard is None:
            known = ", ".join(sorted({*self.guardrails, *BUILTIN_GUARDRAILS}))
            raise ValueError(f"{owner!r} names unknown guardrail {name!r}; known: {known}")
        if guard.kind == "agent" and (guard.agent is None or guard.agent not in self.agents):
            raise ValueError(f"guardrail {name!r} is judged by agent {guard.agent!r}, which "
                             "is not declared")

    def _check_planner(self, team: str, fan_out: FanOutTeam) -> None:
        """A planner answers baton.Plan, unless its team maps the planner's own model
        to subtasks (`plan` or `plan_field`)."""
        assert fan_out.planner is not None
        planner = self.agents[fan_out.planner]
        where = f"team {team!r}: planner {planner.name!r}"
        builtin = contract_name(Plan)
        model = CONTRACTS.get(planner.contract) if planner.contract else None
        if not (fan_out.plan or fan_out.plan_field):
            if planner.contract not in (None, builtin):
                what = f" ({model.__module__}.{model.__qualname__})" if model else ""
                raise ValueError(
                    f"{where} answers {planner.contract!r}{what}, not {builtin!r}: map it to "
                    "subtasks with plan=fn or plan='a list field' (plan_field in a "
                    f"catalogue), or use contract {builtin!r}")
            return
        if planner.contract is None:
            raise ValueError(f"{where}: plan and plan_field read the planner's own model; "
                             "give the planner output=YourModel (contract in a catalogue)")
        if fan_out.plan_field is None or model is None:
            return  # an unknown contract is reported by unknown_contracts()
        texts = [n for n, f in model.model_fields.items() if _is_text_list(f.annotation)]
        if fan_out.plan_field not in texts:
            raise ValueError(f"{where}: plan_field {fan_out.plan_field!r} is not a list[str] "
                             f"field of {planner.contract}; its list[str] fields: "
                             f"{', '.join(texts) or 'none'}")

    def _check_gate(self, team: str, stage: StageSpec) -> None:
        """A gate reads a boolean field of its stage agent's contract."""
        if stage.gate_field is None:
            return
        agent = self.agents.get(stage.agent)
        where = f"team {team!r}: stage {stage.agent!r} gate_field {stage.gate_field!r}"
        if agent is None or agent.contract is None:
            raise ValueError(f"{where}: a gate needs a stage that is an agent with a contract")
        model = CONTRACTS.get(agent.contract)
        if model is None:
            return  # reported by unknown_contracts() where the catalogue is loaded
        field = model.model_fields.get(stage.gate_field)  # unknown contracts: see below
        if field is None or field.annotation is not bool:
            fields = [n for n, f in model.model_fields.items() if f.annotation is bool]
            raise ValueError(f"{where} is not a boolean field of {agent.contract}; boolean "
                             f"fields: {', '.join(fields) or 'none'}")

    def _require_agent(self, name: str, where: str) -> None:
        if name not in self.agents:
            raise ValueError(
                f"{where} names undeclared agent {name!r}; declared agents: "
                f"{', '.join(sorted(self.agents))}"
            )

    def _require_member(self, name: str, where: str) -> None:
        if name not in self.agents and name not in self.teams:
            raise ValueError(
                f"{where} undeclared {name!r}; declared agents and teams: "
                f"{', '.join(sorted([*self.agents, *self.teams]))}"
            )

    def _reject_cycle(self, name: str, path: list[str]) -> None:
        if name in path:
            raise ValueError(f"teams contain themselves: {' -> '.join([*path, name])}")
        if name in self.teams:
            for member in self.members_of(name):
                self._reject_cycle(member, [*path, name])

    def _reject_handoff_loop(self, team: str) -> None:
        """A team whose agents hand the conversation (through any chain of handoffs)
        back to the team itself would nest runs of it without end. Agents handing a
        conversation round among themselves are fine: max_handoffs bounds that."""
        came_from: dict[str, str] = {}
        stack = [team]
        while stack:
            current = stack.pop()
            onward = (self.members_of(current) if current in self.teams
                      else self.agents[current].handoffs)
            for member in onward:
                if member == team:
                    path = [current]
                    while path[-1] != team:
                        path.append(came_from[path[-1]])
                    raise ValueError(
                        f"team {team!r} hands the conversation back to itself: "
                        f"{' -> '.join([*reversed(path), team])}; an agent hands back to "
                        "the router agent, not to the router's team")
                if member not in came_from:
                    came_from[member] = current
                    stack.append(member)

    def members_of(self, name: str) -> list[str]:
        """Direct members of a team, or an agent's handoff targets and agents as tools."""
        if name in self.agents:
            agent = self.agents[name]
            answering = [d.agent for t in agent.tools if (d := self.tools.get(t)) is not None
                         and d.kind == "agent" and d.agent is not None]
            return [*agent.handoffs, *answering]
        return [member for _, member, _ in _team_references(self.teams[name])]

    def pattern_of(self, name: str) -> str:
        team = self.teams.get(name)
        return team.pattern if team is not None else "agent"

    def closure(self, name: str) -> Catalogue:
        """The smallest catalogue that can run `name`: what a run's input carries.

        Never its providers: endpoints and key variables are the worker's own
        configuration, and a run may only name them (docs/security.md)."""
        needed: set[str] = set()
        stack = [name]
        while stack:
            current = stack.pop()
            if current in needed:
                continue
            needed.add(current)
            stack.extend(self.members_of(current))
        guards = {g for n in needed for owner in (self.agents.get(n), self.teams.get(n))
                  if owner is not None
                  for g in owner.guardrail_names}
        needed |= {d.agent for g, d in self.guardrails.items() if g in guards and d.agent}
        agents = {n: a for n, a in self.agents.items() if n in needed}
        models = {m for a in agents.values() for m in [a.model, *a.fallback_models]}
        tools = {t for a in agents.values() for t in a.tools}
        return Catalogue(
            agents=agents,
            tools={n: t for n, t in self.tools.items() if n in tools},
            guardrails={n: g for n, g in self.guardrails.items() if n in guards},
            teams={n: t for n, t in self.teams.items() if n in needed},
            prices={m: p for m, p in self.prices.items() if m in models},
            breakers={m: b for m, b in self.breakers.items() if m in models or m == "default"},
        )

    def unknown_contracts(self) -> list[str]:
        """Problems with contracts this process does not know.

        Checked where a catalogue is loaded (the starter, `baton.Agent`), not when a
        run's input is decoded: a worker that lacks a user's module must fail the
        run with a clear `UnknownContract`, not fail to decode its input (a workflow
        task that would retry forever).
        """
        known = ", ".join(sorted(CONTRACTS))
        return [f"agents.{a.name}.contract: unknown contract {a.contract!r}; known contracts: "
                f"{known} (a contract of your own is a pydantic model in a module given "
                "with --app or the catalogue's `app`)"
                for a in self.agents.values() if a.contract and a.contract not in CONTRACTS]

    def breaker_for(self, model: str) -> BreakerPolicy:
        return self.breakers.get(model) or self.breakers.get("default") or BreakerPolicy()

    def price_for(self, model: str) -> Price | None:
        if model in self.prices:
            return self.prices[model]
        # A named provider of kind "offline" is priced by its adapter (free).
        free = split_model(model)[0] == "offline"
        return Price(input_per_mtok=0, output_per_mtok=0) if free else None

    def with_model(self, model: str) -> Catalogue:
        """Every agent on `model` (the starter's --model), fallbacks dropped."""
        provider, _ = split_model(model)
        known = sorted({*BUILTIN_PROVIDERS, *self.providers})
        if provider not in known:
            raise ValueError(f"unknown model provider {provider!r}; accepted: {', '.join(known)}")
        agents = {
            n: a.model_copy(update={"model": model, "fallback_models": []})
            for n, a in self.agents.items()
        }
        return Catalogue.model_validate(
            {"providers": self.providers, "agents": agents, "teams": self.teams,
             "tools": self.tools, "guardrails": self.guardrails,
             "prices": self.prices, "breakers": self.breakers, "budget": self.budget}
        )


def _is_text_list(annotation: Any) -> bool:
    """Whether a field's annotation is list[str] (or typing.List[str])."""
    return get_origin(annotation) is list and get_args(annotation) == (str,)


def _team_references(team: TriageTeam | FanOutTeam | SupervisorTeam | PipelineTeam,
                     ) -> list[tuple[str, str, bool]]:
    """(role, name, must_be_agent) for every name a team refers to."""
    if isinstance(team, TriageTeam):
        return [("router", team.router, True)]
    if isinstance(team, FanOutTeam):
        return ([("branch", b, False) for b in team.branches]
                + ([("planner", team.planner, True)] if team.planner is not None else [])
                + [("member", m, False) for m in team.members]
                + ([("map_member", team.map_member, False)] if team.map_member is not None
                   else [])
                + [("synthesizer", team.synthesizer, True)])
    if isinstance(team, SupervisorTeam):
        return [("supervisor", team.supervisor, True)] + [
            ("worker", w, False) for w in team.workers
        ]
    return [("stage", s.agent, False) for s in team.stages]
