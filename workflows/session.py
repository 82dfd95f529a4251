"""SessionWorkflow: a conversation that lasts, one workflow per session id.

Each user turn is the `turn` Update. Its validator refuses a blank message, a turn
for another team and a turn after the session ended before anything is written to
history; accepted turns run one at a time (a lock), so two people typing at once
get answers in order. A turn runs the member on the session's memory (the bounded
summary of older turns, the last few turns verbatim, the new message: see
baton/core/session_io.py) as the child workflow `<session id>/turn-<n>`, which shows
every turn in the Web UI and keeps its model and tool calls out of the session's
history, whose growth per turn is then its input and answer only. `inline_agents`
runs agents inside the session instead (bench/session_bench.py compares the two:
about 40 ms less per turn on the offline model, every call in the session's
history).

Triage inside a session is sticky. The session routes with triage's own handoffs
(workflows/handoffs.py) instead of starting a TriageWorkflow per turn: the router
takes its turn on the new message, told which specialist the conversation is
with, and the conversation moves only when the router transfers it to a
*different specialist other than the declared default*. The default is the
catch-all, so "ok, and the second one?" (which fits nothing: the router answers
itself, or picks the default) stays where it is, while "the app crashes too"
moves a billing conversation to technical. An undeclared transfer or a failed
router keeps the current specialist (the default on turn 1); on turn 1 a router
that answers itself answers the turn. From the chosen specialist on, the chain
runs as in triage: specialists may hand on, bounded by `max_handoffs`, and a
failing one falls back to the default. The rule depends only on the recorded
router answer, so replays agree. The team's guardrails are checked here, since no
TriageWorkflow runs.

Long sessions stay inside Temporal's limits: after a turn, once this run's history
passes `continue_after_events`/`continue_after_bytes` (or `continue_after_turns`,
or the server suggests it), the session waits for every handler to finish and
continues as new carrying only its memory (and where its feed is: the session
hosts the stream of its turns' text and steps, baton/runtime/streaming.py). The session
ends itself after `idle_timeout_s` without a turn, or when the `end` Update asks.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial
from typing import Any

from temporalio import workflow
from temporalio.contrib.workflow_streams import WorkflowStream
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from baton.core.errors import AgentFailed, BudgetExhausted, GuardrailTripped
    from baton.core.events import EVENTS_TOPIC, EventKind, RunEvent
    from baton.core.handoffs import NEST_HISTORY
    from baton.core.model_io import Message
    from baton.core.runs import RunInput, RunResult, RunStatus
    from baton.core.session_io import (
        SESSION_ENDED,
        SESSION_TOO_LONG,
        EndedBy,
        EndRequest,
        SessionInput,
        SessionState,
        SessionSummary,
        Turn,
        TurnAnswer,
        TurnRequest,
        context,
        fold,
    )
    from baton.core.specs import AgentSpec, TriageTeam
    from baton.core.text import shorten
    from baton.core.usage import Usage

from baton.workflows.agent_call import judge
from baton.workflows.approval import ApprovalDesk
from baton.workflows.base import workers_own_declared
from baton.workflows.guardrails import check_guardrails
from baton.workflows.handoffs import (
    Handled,
    HandoffOptions,
    Transfer,
    decided_route,
    run_with_handoffs,
    take_turn,
    transfers_with_tools,
)
from baton.workflows.ledger import RunLedger
from baton.workflows.members import run_member
from baton.workflows.streaming import carried_feed


class TurnLedger(RunLedger):
    """One turn's bookkeeping: the budget applies per turn, children are named after it."""

    def __init__(self, run: RunInput, turn: int) -> None:
        super().__init__(run)
        self.turn = turn
        self.started = workflow.now()
        self.children: list[str] = []

    def elapsed_s(self) -> float:
        # A session lives for days; a deadline in its options bounds each turn.
        return (workflow.now() - self.started).total_seconds()

    def child_id(self, member: str) -> str:
        suffix = f"-{len(self.children) + 1}" if self.children else ""
        child = f"{workflow.info().workflow_id}/turn-{self.turn}{suffix}"
        self.children.append(child)
        return child


@workflow.defn
class SessionWorkflow(ApprovalDesk):
    @workflow.init
    def __init__(self, session: SessionInput) -> None:
        self._input = session
        self._memory = session.memory.model_copy(deep=True)
        if self._memory.last_active is None:
            self._memory.last_active = workflow.now()
        self._lock = asyncio.Lock()
        self._answering: int | None = None  # the turn being answered
        self._ending = False
        self._ended_by: EndedBy | None = None
        self._end_reason = ""
        self._settled = 0  # turns finished in this run, answered or failed
        self._answered_here = 0
        # The session's feed (baton/runtime/streaming.py): its turns' text and steps, its offsets
        # going on across continue-as-new.
        self._stream = WorkflowStream(session.stream)
        self._events = self._stream.topic(EVENTS_TOPIC, type=RunEvent)

    @workflow.run
    async def run(self, session: SessionInput) -> SessionSummary:
        limits = session.limits
        self._show_waiting()
        while self._ended_by is None:
            settled = self._settled
            assert self._memory.last_active is not None
            idle_s = (workflow.now() - self._memory.last_active).total_seconds()
            if self._answering is None and idle_s >= limits.idle_timeout_s:
                self._ended_by = "idle"
                self._end_reason = f"no turn for {limits.idle_timeout_s:g} s"
                break
            # While a turn runs, only its end can make the session idle again.
            wait = (None if self._answering is not None
                    else timedelta(seconds=limits.idle_timeout_s - idle_s))
            try:
                await workflow.wait_condition(partial(self._woken, settled), timeout=wait,
                                              timeout_summary="session idle")
            except TimeoutError:
                continue
            if self._ended_by is None and self._continue_due():
                # Turns accepted meanwhile finish here, not in a run about to close;
                # subscribers' polls are let go (they follow to the next run).
                self._stream.detach_pollers()
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._ended_by is None:
                    workflow.continue_as_new(self._carried())
        self._stream.detach_pollers()
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.set_current_details(f"ended ({self._ended_by}): {self._memory.turns} turns")
        return self._summary()

    # --- updates and queries ----------------------------------------------------

    @workflow.update
    async def turn(self, request: TurnRequest) -> TurnAnswer:
        """Answer one user message in the context of the conversation so far."""
        async with self._lock:
            if self._ending or self._ended_by is not None:
                raise ApplicationError(self._ended_message(), type=SESSION_ENDED,
                                       non_retryable=True)
            self._answering = self._memory.turns + 1
            try:
                return await self._answer(request.message)
            finally:
                self._answering = None
                self._settled += 1
                self._memory.last_active = workflow.now()
                self._show_waiting()

    @turn.validator
    def _check_turn(self, request: TurnRequest) -> None:
        # Raising here refuses the turn before it is written to history.
        if self._ending or self._ended_by is not None:
            raise ValueError(self._ended_message())
        member = self._input.member
        if (declared := workers_own_declared(self._input.catalogue)) is not None:
            # As pattern workflows refuse such a run (workflows/base.py: unrunnable).
            raise ValueError(f"the session's input {declared}")
        if request.member is not None and request.member != member:
            raise ValueError(f"session {self._input.session_id!r} is a conversation with "
                             f"{member!r}, not {request.member!r}; use another session id")
        if not request.message.strip():
            raise ValueError("a turn needs a non-empty message")

    @workflow.update
    async def end(self, request: EndRequest) -> SessionSummary:
        """End the session once the turns already accepted are answered."""
        self._ending = True
        async with self._lock:
            if self._ended_by is None:
                self._ended_by, self._end_reason = "user", request.reason
        return self._summary()

    @end.validator
    def _check_end(self, request: EndRequest) -> None:
        if self._ending or self._ended_by is not None:
            raise ValueError(self._ended_message())

    @workflow.query
    def state(self) -> SessionState:
        """Turns, memory, spending and the size of this run's history."""
        info = workflow.info()
        status = ("ended" if self._ended_by is not None
                  else "answering" if self._answering is not None else "waiting")
        memory = self._memory
        return SessionState(
            session_id=self._input.session_id, member=self._input.member, status=status,
            turns=memory.turns, specialist=memory.specialist, summary=memory.summary,
            folded_turns=memory.folded_turns, dropped_turns=memory.dropped_turns,
            recent=memory.recent, usage=memory.usage, run=memory.run,
            history_events=info.get_current_history_length(),
            history_bytes=info.get_current_history_size(),
            idle_timeout_s=self._input.limits.idle_timeout_s, last_active=memory.last_active)

    def set_status(self, status: RunStatus) -> None:
        # Inline agents may wait for approvals (ApprovalDesk); the details say so.
        if status != "waiting_approval":
            workflow.set_current_details(f"turn {self._answering}: answering")

    # --- one turn -------------------------------------------------------------

    async def _answer(self, message: str) -> TurnAnswer:
        session = self._input
        number = self._memory.turns + 1
        try:
            run = RunInput(member=session.member, messages=context(self._memory, message),
                           catalogue=session.catalogue, options=session.options)
        except ValidationError as err:
            # Only a session without compression gets here: its context kept growing.
            raise ApplicationError(f"turn {number} does not fit one request: "
                                   f"{err.errors()[0]['msg']}; start a new session or "
                                   "keep compression on", type=SESSION_TOO_LONG,
                                   non_retryable=True) from None
        ledger = TurnLedger(run, number)
        ledger.on_step = lambda step: self._emit(ledger, "step", step=step.kind,
                                                 agent=step.agent, detail=step.detail,
                                                 ok=step.ok)
        workflow.set_current_details(f"turn {number}: {session.member} is answering")
        handled_by, route_reason = session.member, ""
        team = session.catalogue.teams.get(session.member)
        try:
            if isinstance(team, TriageTeam):
                handled_by, route_reason, result = await self._triage(ledger, team, message)
            else:
                result = await self._run_member(ledger, session.member, run.messages)
            answer, output = result.answer, result.output
        except BudgetExhausted as err:
            answer, output = ledger.stopped_by_budget(err)["answer"], None
        except GuardrailTripped as err:
            ledger.blocked = ledger.blocked or err.message
            answer, output = f"Blocked: {err.message}", None
        finally:
            # A failed turn is not remembered, but what it spent is.
            memory = self._memory
            for agent, usage in ledger.usage.items():
                memory.usage[agent] = memory.usage[agent].plus(usage) \
                    if agent in memory.usage else usage
        status = ledger.status
        if status in ("ok", "degraded"):
            # Blocked and budget-stopped turns are answered but not remembered.
            memory.recent.append(Turn(number=number, user=message, answer=answer,
                                      handled_by=handled_by))
            memory.turns = number
            if isinstance(team, TriageTeam) and handled_by != team.router:
                memory.specialist = handled_by
            self._memory = fold(memory, session.limits)
            self._answered_here += 1
        self._emit(ledger, "result", agent=handled_by, status=status, detail=answer[:2000])
        return TurnAnswer(
            session_id=session.session_id, turn=number, answer=answer, handled_by=handled_by,
            status=status, route_reason=route_reason, output=output, usage=ledger.usage,
            reasons=ledger.reasons,
            workflow_id=ledger.children[-1] if ledger.children else workflow.info().workflow_id)

    async def _run_member(self, ledger: TurnLedger, member: str,
                          messages: list[Message]) -> RunResult:
        inline = self._input.limits.inline_agents and member in ledger.run.catalogue.agents
        return await run_member(ledger, member, messages, as_child=not inline)

    async def _triage(self, ledger: TurnLedger, team: TriageTeam,
                      message: str) -> tuple[str, str, RunResult]:
        catalogue = ledger.run.catalogue
        name = self._input.member
        router = catalogue.agents[team.router]
        await check_guardrails(ledger, team.input_guardrails, "input", message, name, judge)
        routed = await self._route(ledger, router, message)
        if isinstance(routed, Handled):  # turn 1, and the router answered it
            handled = routed
        else:
            options = HandoffOptions(
                max_handoffs=team.max_handoffs,
                input_filter=NEST_HISTORY if team.nest_handoff_history else None,
                children=not self._input.limits.inline_agents)
            handled = await run_with_handoffs(ledger, routed.target, ledger.run.messages,
                                              options, via=routed)
        await check_guardrails(ledger, team.output_guardrails, "output", handled.answer, name,
                               judge)
        result = RunResult(member=handled.handled_by, pattern="agent", answer=handled.answer,
                           output=handled.output_json)
        return handled.handled_by, handled.reason, result

    async def _route(self, ledger: TurnLedger, router: AgentSpec,
                     message: str) -> Transfer | Handled:
        """Where this turn goes, and why (the stickiness rule of the module docstring)."""
        catalogue = ledger.run.catalogue
        current = self._memory.specialist
        if current is None:
            prompt = message
        else:
            about = catalogue.agents[current].description if current in catalogue.agents \
                else catalogue.teams[current].description
            last = self._memory.recent[-1].user if self._memory.recent else ""
            # The request goes last, on its own line: routers (the offline one
            # included) judge the request, not the framing around it.
            prompt = (f"This conversation is with {current} ({about}). Keep it there unless "
                      f"the new request clearly belongs to another specialist.\n"
                      f"Previous request: {shorten(last, 300)}\nRequest: {message}")
        asked = [Message(role="user", content=prompt)]
        stay = current or router.default_handoff or router.handoffs[0]
        try:
            if transfers_with_tools():
                turn = await take_turn(ledger, router, asked)
            else:  # recorded before transfer tools: the router answered a RouteDecision
                turn = await decided_route(ledger, router, asked)
        except AgentFailed as err:
            ledger.degrade(f"router {router.name} failed; {stay} answered")
            return Transfer(router.name, stay, f"the router failed ({err.reason}); {stay} "
                            "answered")
        if not isinstance(turn, Transfer):
            if current is None:
                return Handled(router.name, turn.answer, turn.output, turn.output_json,
                               [router.name])
            return Transfer(router.name, current, f"stays with {current}: the router named "
                            "no other specialist")
        if turn.refused is not None:
            ledger.degrade(f"router {router.name} asked for the undeclared {turn.refused}; "
                           f"{stay} answered")
            return Transfer(router.name, stay, f"stays with {stay}: {turn.reason}")
        return sticky(turn, current, router.default_handoff)

    # --- lifecycle --------------------------------------------------------------

    def _woken(self, settled: int) -> bool:
        return self._ended_by is not None or self._settled != settled

    def _continue_due(self) -> bool:
        info = workflow.info()
        limits = self._input.limits
        return (info.is_continue_as_new_suggested()
                or info.get_current_history_length() >= limits.continue_after_events
                or info.get_current_history_size() >= limits.continue_after_bytes
                or (limits.continue_after_turns is not None
                    and self._answered_here >= limits.continue_after_turns))

    def _carried(self) -> SessionInput:
        memory = self._memory.model_copy(update={"run": self._memory.run + 1})
        return self._input.model_copy(update={"memory": memory,
                                              "stream": carried_feed(self._stream)})

    def _emit(self, ledger: TurnLedger, kind: EventKind, **fields: Any) -> None:
        """A turn's progress event, in the session's feed (no history)."""
        now = workflow.now()
        self._events.publish(RunEvent(
            kind=kind, spent=ledger.spent,
            at_s=(now - workflow.info().start_time).total_seconds(), at=now, **fields))

    def _summary(self) -> SessionSummary:
        return SessionSummary(session_id=self._input.session_id, member=self._input.member,
                              turns=self._memory.turns, ended_by=self._ended_by or "user",
                              reason=self._end_reason, usage=self._memory.usage,
                              runs=self._memory.run)

    def _ended_message(self) -> str:
        how = "after being idle" if self._ended_by == "idle" else "at the user's request"
        return (f"session {self._input.session_id!r} has ended ({how}, "
                f"{self._memory.turns} turns); start a new session id to talk again")

    def _show_waiting(self) -> None:
        memory = self._memory
        details: dict[str, Any] = {"turns": memory.turns, "run": memory.run}
        if memory.specialist:
            details["with"] = memory.specialist
        shown = ", ".join(f"{k} {v}" for k, v in details.items())
        spent = Usage.sum(memory.usage.values())
        cost = "cost unknown" if spent.cost_usd is None else f"${spent.cost_usd:.4f}"
        workflow.set_current_details(
            f"**waiting** for turn {memory.turns + 1} ({shown}); ends itself after "
            f"{self._input.limits.idle_timeout_s:g} s without a turn\n\nspent so far: "
            f"{spent.calls} model calls, {spent.total_tokens} tokens, {cost}")


def sticky(transfer: Transfer, current: str | None, default: str | None) -> Transfer:
    """The router's transfer, kept to the current specialist unless it names another
    one that is not the catch-all default."""
    route, why = transfer.target, transfer.reason
    if current is None:
        return transfer
    if route == current:
        return Transfer(transfer.source, current, f"stays with {current}: {why}")
    if route == default:
        return Transfer(transfer.source, current, (
            f"stays with {current}: the router picked the catch-all {default}, not "
            "another specialist"))
    return Transfer(transfer.source, route, f"moved from {current} to {route}: {why}")
