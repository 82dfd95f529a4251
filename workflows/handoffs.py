"""Handoffs: agents passing a conversation on until one of them answers.

`run_with_handoffs` is the one way a conversation moves between agents: triage,
sessions and a flow's `agent.run` all use it. An agent that declares `handoffs` is
offered a `transfer_to_<target>` tool per target (baton/core/handoffs.py) beside its own
tools. When its model calls one, the agent's turn ends and the target takes the
conversation; when it answers in text, it answered. Any agent may hand off: a
router to its specialists, a specialist back to the router or to a peer. A target
that is a team runs as its pattern's child workflow and answers.

The guarantees a router gave stay, for every agent that hands off:
- an agent can only hand to its declared targets: a transfer tool it was not given
  sends the conversation to its declared default (the run is degraded);
- an agent that fails before handing on falls back to its own default; a target
  that fails falls back to the default of the agent that chose it;
- at most `max_handoffs` transfers per chain (cycles are allowed); one more is
  `HandoffLimitReached`, a budget stop: the run ends with what it completed.

What a target sees is the conversation the chain was given (never the previous
agent's tool calls: state goes through the run's context), or what an input filter
makes of it; an `on_handoff` hook may change the run's context on the way, in
place, so later steps and the run's result see the change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from baton.core.contracts import RouteDecision, contract_name, route_schema
    from baton.core.errors import AgentFailed, HandoffLimitReached, HookFailed
    from baton.core.handoffs import (
        DEFAULT_MAX_HANDOFFS,
        HANDOFF_HOOKS,
        INPUT_FILTERS,
        HandoffSpec,
        is_transfer,
        transfer_spec,
        transfer_tool_name,
    )
    from baton.core.model_io import Message, ToolCall
    from baton.core.specs import AgentSpec, Catalogue
    from baton.core.team_hooks import call_hook, messages_of

from baton.workflows.agent_call import AgentReply, apply_context, function_toolbox, run_agent
from baton.workflows.ledger import RunLedger
from baton.workflows.members import run_member
from baton.workflows.toolbox import Toolbox

# Runs recorded before routers transferred through tools chose with a RouteDecision;
# without this marker in their history they replay that way (decided_route).
TRANSFER_TOOLS_PATCH = "baton-handoff-tools"


@dataclass
class Transfer:
    """One agent handing the conversation to another, and why."""

    source: str
    target: str
    reason: str
    # The undeclared transfer tool the model asked for (then `target` is the default).
    refused: str | None = None


@dataclass
class Handled:
    """Who answered the chain, what, and how the conversation got there."""

    handled_by: str
    answer: str
    # The answering agent's validated output (its contract's model), when in this run.
    output: BaseModel | None
    # Its output as JSON: an agent's contract output, or a team's structured output.
    output_json: dict[str, Any] | None
    # Every agent or team that held the conversation, in order (cycles repeat names).
    chain: list[str]
    # Why the conversation reached the answerer ("" when the first agent answered).
    reason: str = ""


@dataclass
class HandoffOptions:
    """How one chain runs."""

    max_handoffs: int = DEFAULT_MAX_HANDOFFS
    # The run's context (a pydantic model): tools and on_handoff hooks may change it.
    context: BaseModel | None = None
    # A filter for every transfer that names none of its own (`nest_handoff_history`).
    input_filter: str | None = None
    # The contract the first agent answers on its first turn instead of its own
    # (`agent.run(output=...)`).
    contract: str | None = None
    # The spec an agent runs with in this chain (per-run variants: a flow's model
    # override, instructions made from the context); by default the catalogue's.
    prepare: Callable[[AgentSpec], AgentSpec] | None = None
    # Agents that cannot hand on run as their own child workflow (a session's turns).
    children: bool = False
    # Told of each transfer as it happens (progress in the Web UI).
    on_transfer: Callable[[Transfer], None] | None = None


@dataclass
class TurnChoice:
    """The transfer that ended a turn, if any: one object shared by a HandoffToolbox
    and every copy made of it (run_agent adds an agent's MCP tools to a copy,
    workflows/mcp.py), so `take_turn` sees a transfer made through the copy."""

    transfer: Transfer | None = None


@dataclass
class HandoffToolbox(Toolbox):
    """An agent's own tools and one transfer tool per declared target. The first
    transfer the model asks for ends the agent's turn."""

    agent: AgentSpec | None = None
    # Transfer tool name -> target.
    targets: dict[str, str] = field(default_factory=dict)
    choice: TurnChoice = field(default_factory=TurnChoice)

    @property
    def chosen(self) -> Transfer | None:
        return self.choice.transfer

    def ends_turn(self) -> bool:
        return self.chosen is not None

    async def run(self, calls: Sequence[ToolCall]) -> list[str]:
        own = [c for c in calls if not is_transfer(c.name)]
        answers = iter(await super().run(own))
        return [self._transfer(c) if is_transfer(c.name) else next(answers) for c in calls]

    def _transfer(self, call: ToolCall) -> str:
        assert self.agent is not None
        if self.chosen is not None:
            return (f"Not transferred: this turn already hands the conversation to "
                    f"{self.chosen.target}.")
        agent = self.agent
        reason = str(call.arguments.get("reason") or "").strip()[:500]
        target = self.targets.get(call.name)
        if target is None:
            default = agent.default_handoff or agent.handoffs[0]
            self.choice.transfer = Transfer(agent.name, default, (
                f"{agent.name} asked for {call.name!r}, which is not one of its transfers "
                f"({', '.join(self.targets)}); its default {default} takes over"),
                refused=call.name)
            return f"Error: there is no transfer named {call.name}; {default} takes over."
        self.choice.transfer = Transfer(
            agent.name, target, reason or f"{agent.name} handed the conversation to {target}")
        return f"Transferred to {target}."


def handoff_toolbox(ledger: RunLedger, agent: AgentSpec,
                    context: BaseModel | None = None) -> Toolbox | None:
    """The agent's function tools, and its transfer tools when it declares handoffs."""
    own = function_toolbox(ledger, agent, context)
    if not agent.handoffs:
        return own
    catalogue = ledger.run.catalogue
    targets = {transfer_tool_name(t): t for t in agent.handoffs}
    transfers = [transfer_spec(name, target, _description(catalogue, agent, target))
                 for name, target in targets.items()]
    return HandoffToolbox(specs=[*(own.specs if own else []), *transfers],
                          handlers=dict(own.handlers) if own else {},
                          max_turns=agent.max_tool_turns, agent=agent, targets=targets)


def _description(catalogue: Catalogue, agent: AgentSpec, target: str) -> str:
    declared = agent.handoff_options.get(target, HandoffSpec()).description
    if declared:
        return declared
    member = catalogue.agents.get(target) or catalogue.teams.get(target)
    return member.description if member is not None else ""


async def take_turn(ledger: RunLedger, agent: AgentSpec, messages: list[Message], *,
                    context: BaseModel | None = None,
                    contract: str | None = None) -> AgentReply | Transfer:
    """One agent's turn: its answer, or the transfer that ended it. AgentFailed when
    it gives neither."""
    toolbox = handoff_toolbox(ledger, agent, context)
    reply = await run_agent(ledger, agent, messages, contract=contract, toolbox=toolbox)
    if isinstance(toolbox, HandoffToolbox) and toolbox.chosen is not None:
        return toolbox.chosen
    return reply


async def run_with_handoffs(ledger: RunLedger, start: str, messages: list[Message],
                            options: HandoffOptions | None = None, *,
                            via: Transfer | None = None) -> Handled:
    """Run `start` on `messages` and follow its handoffs until someone answers.

    `via`: the transfer that brought the conversation to `start` (a session's
    routing, made before); it counts as the chain's first handoff.
    """
    return await _Chain(ledger, messages, options or HandoffOptions()).follow(start, via)


class _Chain:
    """The state of one chain: who held the conversation, and how many transfers."""

    def __init__(self, ledger: RunLedger, messages: list[Message],
                 options: HandoffOptions) -> None:
        self.ledger = ledger
        self.messages = messages
        self.options = options
        self.catalogue = ledger.run.catalogue
        self.visited: list[str] = []
        self.transfers = 0

    async def follow(self, start: str, via: Transfer | None) -> Handled:
        current, transfer = start, via
        if via is not None:
            self.visited.append(via.source)
        while True:
            seen = self.messages if transfer is None else self._hand_over(transfer)
            self.visited.append(current)
            try:
                outcome = await self._turn(current, seen, first=transfer is None)
            except AgentFailed as err:
                fallback = self._fallback(current, transfer)
                if fallback is None:
                    raise
                self.ledger.degrade(f"{current} failed ({err.reason}); the default {fallback} "
                                    "answered")
                transfer = Transfer(transfer.source if transfer else current, fallback,
                                    f"fallback after {current} failed")
                current = fallback
                continue
            if isinstance(outcome, Transfer):
                transfer, current = outcome, outcome.target
                continue
            outcome.chain = list(self.visited)
            outcome.reason = transfer.reason if transfer is not None else ""
            return outcome

    async def _turn(self, name: str, messages: list[Message], *,
                    first: bool) -> Handled | Transfer:
        """`name`'s answer (an agent's turn, or a team's run), or its transfer."""
        agent = self.catalogue.agents.get(name)
        if agent is None or (self.options.children and not agent.handoffs):
            result = await run_member(self.ledger, name, messages,
                                      as_child=agent is not None)
            return Handled(name, result.answer, None, result.output, [])
        if self.options.prepare is not None:
            agent = self.options.prepare(agent)
        contract = self.options.contract if first else None
        turn = await take_turn(self.ledger, agent, messages, context=self.options.context,
                               contract=contract)
        if isinstance(turn, Transfer):
            return turn
        return Handled(name, turn.answer, turn.output, turn.output_json, [])

    def _hand_over(self, transfer: Transfer) -> list[Message]:
        """Count and record `transfer`, run its hook, and give what the target sees."""
        self.transfers += 1
        limit = self.options.max_handoffs
        if self.transfers > limit:
            raise HandoffLimitReached([*self.visited, transfer.target], limit)
        if transfer.refused is not None:
            self.ledger.degrade(transfer.reason)
        self.ledger.step("handoff", transfer.source, f"-> {transfer.target}: {transfer.reason}",
                         ok=transfer.refused is None)
        if self.options.on_transfer is not None:
            self.options.on_transfer(transfer)
        source = self.catalogue.agents.get(transfer.source)
        declared = (source.handoff_options.get(transfer.target) if source is not None
                    else None) or HandoffSpec()
        if declared.on_handoff is not None:
            self._run_hook(declared.on_handoff, transfer)
        chosen = declared.input_filter or self.options.input_filter
        if chosen is None:
            return self.messages
        role = f"the input filter of {transfer.source} -> {transfer.target}"
        return messages_of(call_hook(INPUT_FILTERS, chosen, role, list(self.messages)),
                           role, chosen)

    def _run_hook(self, name: str, transfer: Transfer) -> None:
        """An on_handoff hook; a context it returns becomes the run's context."""
        role = f"the on_handoff hook of {transfer.source} -> {transfer.target}"
        context = self.options.context
        changed = call_hook(HANDOFF_HOOKS, name, role, context, transfer.reason)
        if changed is None or changed is context:
            return
        if context is None or type(changed) is not type(context):
            expected = ("nothing: this run has no context" if context is None
                        else f"None or a {type(context).__name__}")
            raise HookFailed(f"{role} {name!r} returned {type(changed).__name__}; accepted: "
                             f"{expected}")
        apply_context(context, changed.model_dump(mode="json"))

    def _fallback(self, failed: str, transfer: Transfer | None) -> str | None:
        """Who answers when `failed` gives no answer: the default of the agent that
        chose it (its own, when it was the first), never itself."""
        chooser = self.catalogue.agents.get(transfer.source if transfer else failed)
        default = chooser.default_handoff if chooser is not None else None
        return default if default is not None and default != failed else None


async def decided_route(ledger: RunLedger, router: AgentSpec,
                        messages: list[Message]) -> Transfer:
    """How a router chose before transfer tools: a `RouteDecision` whose route is an
    enum of its targets (kept so runs recorded then replay; TRANSFER_TOOLS_PATCH).
    AgentFailed when the router gives no declared route."""
    targets = list(router.handoffs)

    def declared(decision: BaseModel) -> str | None:
        assert isinstance(decision, RouteDecision)
        return None if decision.route in targets else \
            f"route {decision.route!r} is not one of {targets}"

    reply = await run_agent(ledger, router, messages, contract=contract_name(RouteDecision),
                            schema=route_schema(targets), accept=declared)
    assert isinstance(reply.output, RouteDecision)
    return Transfer(router.name, reply.output.route, reply.output.reason)


async def decided_or_default(ledger: RunLedger, router: AgentSpec,
                             messages: list[Message]) -> Transfer:
    """`decided_route`, or the router's default when it gives no declared route."""
    try:
        return await decided_route(ledger, router, messages)
    except AgentFailed as err:
        default = router.default_handoff or router.handoffs[0]
        ledger.degrade(f"router {router.name} failed; used default {default}")
        return Transfer(router.name, default,
                        f"router failed, sent to the default: {err.reason}")


def transfers_with_tools() -> bool:
    """Whether this run routes through transfer tools (runs recorded before do not)."""
    return workflow.patched(TRANSFER_TOOLS_PATCH)
