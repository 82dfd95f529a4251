"""What every pattern workflow shares: the run wrapper and the live-state queries.

A pattern subclasses `PatternWorkflow`, defines its `@workflow.run` as one line
that calls `self.execute(run, ResultType, self._body)`, and reports progress with
`self.set_phase(...)`. The wrapper owns the run's ledger and turns an exhausted
budget into a result with the partial answers gathered so far; queries `phase`,
`state` and `usage` answer while the run is live. `set_status` is the one place a
run's status changes (running, waiting_approval, then its final status); it upserts
the run's search attributes (baton/telemetry/search.py) so the Web UI and `starter.py list`
find runs by team, pattern, status, cost, tokens and models; the Web UI's Current
Details show the status, the phase and the spending so far. Every pattern and flow
hosts its run's feed (baton/runtime/streaming.py): its progress events, and in a run that
streams, its models' text and (in the top-level run) its nested runs' events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.contrib.workflow_streams import WorkflowStream
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from baton.core.errors import SPENT_DETAIL, BudgetExhausted, GuardrailTripped, InvalidRunInput
    from baton.core.events import EVENTS_TOPIC, EventKind, RunEvent
    from baton.core.runs import (
        PATTERN_WORKFLOWS,
        RunInput,
        RunResult,
        RunState,
        RunStatus,
        Step,
        Trip,
    )
    from baton.core.specs import Catalogue
    from baton.core.stream_events import StepEvent
    from baton.core.usage import Usage
    from baton.telemetry.metrics import record_run_result
    from baton.telemetry.search import (
        COST_USD,
        MODELS,
        PATCH_ID,
        PATTERN,
        STATUS,
        TEAM,
        TOKENS,
    )

from baton.workflows.agent_call import judge
from baton.workflows.approval import ApprovalDesk
from baton.workflows.guardrails import check_guardrails
from baton.workflows.ledger import RunLedger
from baton.workflows.streaming import forwarded, publish

R = TypeVar("R", bound=RunResult)


class PatternWorkflow(ApprovalDesk):
    """Base of the pattern workflows (handlers defined here are inherited)."""

    pattern = "agent"

    def __init__(self) -> None:
        self._phase = "starting"
        self._doing = "starting"  # the phase, in the words the Web UI shows
        self._status: RunStatus = "running"
        self._ledger: RunLedger | None = None
        self._searchable: bool | None = None  # decided at the first upsert
        # Started with team, pattern and status (baton.runtime.launch.start_run): searchable
        # from the start, with no patch marker and no first upsert.
        self._started_searchable = (
            workflow.info().typed_search_attributes.get(STATUS) is not None)
        # Live progress for watchers; costs no history until someone subscribes.
        self._stream = WorkflowStream()
        self._events = self._stream.topic(EVENTS_TOPIC, type=RunEvent)

    def emit(self, kind: EventKind, **fields: Any) -> None:
        """Publish a progress event (with the spending so far) to the run's stream."""
        ledger = self._ledger
        info = workflow.info()
        event = RunEvent(
            kind=kind, path=ledger.run.path if ledger else "",
            spent=ledger.spent if ledger else Usage(),
            at_s=(workflow.now() - info.start_time).total_seconds(), at=workflow.now(),
            **fields)
        self._events.publish(event)
        if info.root is not None and ledger is not None and ledger.run.options.stream:
            # A nested run's events join its top-level run's feed (workflows/streaming.py).
            publish(StepEvent(workflow_id=info.workflow_id, path=event.path, event=event))

    def progress_counts(self) -> tuple[int, int] | None:
        """(done, total) for patterns that count parts, e.g. a fan-out's branches."""
        return None

    @workflow.query
    def phase(self) -> str:
        """What the run is doing now, in a few words."""
        return self._phase

    @workflow.query
    def state(self) -> RunState:
        """Status, phase and spending so far, in one answer."""
        return RunState(status=self._status, phase=self._phase,
                        usage=self._ledger.spent if self._ledger is not None else Usage())

    def set_status(self, status: RunStatus, *,
                   searchable: Sequence[SearchAttributeUpdate[Any]] = (),
                   upsert: bool = True) -> None:
        """Change the run's status; `searchable`: other search attributes to upsert with
        it (one command, one history event); `upsert=False` when they already hold."""
        self._status = status
        if upsert:
            self._upsert([STATUS.value_set(status), *searchable])
        self.emit("status", status=status)
        self.show_details()
        if self._ledger is not None:  # final statuses only; not again when replayed
            run = self._ledger.run
            record_run_result(run.member, status, nested=bool(run.path))

    def _upsert(self, updates: list[SearchAttributeUpdate[Any]]) -> None:
        if self._searchable is None:
            # Runs recorded before search attributes have no marker and replay without
            # upserts; a worker whose server refused them leaves the patch inactive
            # (baton/telemetry/search.py: patch_activation).
            self._searchable = self._started_searchable or workflow.patched(PATCH_ID)
        if self._searchable:
            workflow.upsert_search_attributes(updates)

    @workflow.query
    def usage(self) -> Usage:
        """What the run has spent so far (its nested runs' once they finish)."""
        return self._ledger.spent if self._ledger is not None else Usage()

    def set_phase(self, phase: str, details: str | None = None) -> None:
        self._phase = phase
        self._doing = details or phase
        self.show_details()
        counts = self.progress_counts()
        self.emit("phase", detail=phase, done=counts[0] if counts else None,
                  total=counts[1] if counts else None)

    def _on_step(self, step: Step) -> None:
        self.emit("step", step=step.kind, agent=step.agent, detail=step.detail, ok=step.ok)
        self.show_details()

    def show_details(self) -> None:
        """The Web UI's Current Details: status, what the run does, what it spent so far
        (plain ASCII, so what people copy from it works). While a person is asked, the
        approval desk shows the question and the command that answers it instead."""
        if self._status == "waiting_approval":
            return
        spent = self._ledger.spent if self._ledger is not None else Usage()
        cost = "cost unknown" if spent.cost_usd is None else f"${spent.cost_usd:.4f}"
        workflow.set_current_details(
            f"**{self._status}** - {self._doing}\n\nspent so far: {spent.calls} model calls, "
            f"{spent.total_tokens} tokens, {spent.tool_calls} tool calls, {cost}")

    def partial_fields(self) -> dict[str, Any]:
        """Pattern-specific result fields worth keeping when a budget stops the run."""
        return {}

    async def execute(self, run: RunInput, result_type: type[R],
                      body: Callable[[RunLedger], Awaitable[R]], *, check: bool = True) -> R:
        """Run `body` with the run's ledger; `check=False` for a run whose input was
        checked by its workflow (a flow's catalogue is the worker's, not the input's)."""
        if check and (problem := unrunnable(run, self.pattern)) is not None:
            # Retrying cannot fix the input: fail the run, not its workflow task forever.
            self.set_status("failed")
            raise InvalidRunInput(problem)
        self._ledger = ledger = RunLedger(run)
        ledger.on_step = self._on_step
        self.set_status("running", searchable=[TEAM.value_set(run.member),
                                               PATTERN.value_set(self.pattern)],
                        upsert=not self._started_searchable)
        try:
            result = await self._guarded(ledger, body)
        except BudgetExhausted as err:
            result = result_type(pattern=self.pattern, **ledger.stopped_by_budget(err),
                                 **self.partial_fields())
        except GuardrailTripped as err:
            result = result_type(pattern=self.pattern,
                                 answer=err.refusal or f"Blocked: {err.message}",
                                 trip=Trip(guardrail=err.guardrail, where=err.where,
                                           reason=err.reason),
                                 **ledger.result_fields(), **self.partial_fields())
        except ApplicationError as err:
            self.set_status("failed", searchable=spending_attributes(ledger))
            await forwarded()
            raise failure_with_spending(err, ledger) from err
        except GeneratorExit:
            # A suspended run's coroutine being closed (garbage collected after a failed
            # task or replay), maybe inside another run's event loop: not this run's end,
            # and any command issued now would land in that other run.
            raise
        except BaseException:
            self.set_status("failed", searchable=spending_attributes(ledger))
            raise
        self._phase = self._doing = "done"
        self.set_status(result.status, searchable=spending_attributes(ledger))
        self.emit("result", status=result.status, detail=result.answer[:2000])
        await forwarded()
        return result

    async def _guarded(self, ledger: RunLedger, body: Callable[[RunLedger], Awaitable[R]]) -> R:
        """The body between the team's input and output guardrails (an agent's own are
        checked by run_agent)."""
        run = ledger.run
        team = run.catalogue.teams.get(run.member)
        if team is None or not (team.input_guardrails or team.output_guardrails):
            return await body(ledger)
        alongside = [g for g in team.input_guardrails if run.catalogue.guardrail(g).parallel]
        before = [g for g in team.input_guardrails if g not in alongside]
        await check_guardrails(ledger, before, "input", run.prompt, run.member, judge)
        task = asyncio.ensure_future(body(ledger))
        try:
            await check_guardrails(ledger, alongside, "input", run.prompt, run.member, judge)
        except GuardrailTripped:
            task.cancel()
            raise
        result = await task
        await check_guardrails(ledger, team.output_guardrails, "output", result.answer,
                               run.member, judge)
        result.trace = list(ledger.trace)  # with the output checks, made after the result
        return result


def spending_attributes(ledger: RunLedger) -> list[SearchAttributeUpdate[Any]]:
    """What a run spent, as search attributes: its nested runs' spending included, cost
    only when known (an unknown price is not $0), every model it called or tried."""
    spent = ledger.spent
    updates: list[SearchAttributeUpdate[Any]] = [TOKENS.value_set(spent.total_tokens)]
    if spent.cost_usd is not None:
        updates.append(COST_USD.value_set(spent.cost_usd))
    if models := sorted({step.model for step in ledger.trace if step.model}):
        updates.append(MODELS.value_set(_fitting(models)))
    return updates


def _fitting(values: list[str], limit: int = 1500) -> list[str]:
    """The first `values` whose JSON stays under `limit` bytes: the server refuses a
    search attribute value above 2 KB (by default), and a refused upsert would fail
    every workflow task of the run."""
    kept: list[str] = []
    size = 2
    for value in values:
        size += len(value.encode()) + 4
        if size > limit:
            break
        kept.append(value)
    return kept


def workers_own_declared(catalogue: Catalogue) -> str | None:
    """What a run's catalogue declares that only the worker may ("declares providers
    (...); a run may only name them ..."); None when it declares nothing of the kind.

    Whoever can start a workflow writes its input: a provider's endpoint in it would
    send the worker's keys wherever that person chose, an MCP server's command or URL
    would run or reach what that person chose with the worker's secrets
    (docs/security.md). Catalogue.closure never puts either into a run's input."""
    for kind, names in (("providers", catalogue.providers), ("MCP servers", catalogue.mcp)):
        if names:
            return (f"declares {kind} ({', '.join(sorted(names))}); a run may only name "
                    f"{kind}, which the worker declares in its own catalogue "
                    "(worker.py --catalogue FILE)")
    return None


def unrunnable(run: object, pattern: str) -> str | None:
    """Why this workflow (running `pattern`) cannot run `run`, if it cannot."""
    if not isinstance(run, RunInput):
        return f"the input is not a RunInput but {type(run).__name__}"
    catalogue = run.catalogue
    if (declared := workers_own_declared(catalogue)) is not None:
        return f"the run's input {declared}"
    if run.member not in catalogue.agents and run.member not in catalogue.teams:
        return (f"member {run.member!r} is not in the run's catalogue (agents: "
                f"{', '.join(sorted(catalogue.agents)) or 'none'}; teams: "
                f"{', '.join(sorted(catalogue.teams)) or 'none'})")
    own = catalogue.pattern_of(run.member)
    if own != pattern:
        return (f"{run.member!r} is run by {PATTERN_WORKFLOWS[own]}, not "
                f"{workflow.info().workflow_type}")
    return None


def failure_with_spending(err: ApplicationError, ledger: RunLedger) -> ApplicationError:
    """The same failure, carrying what the run spent, so a parent still counts it."""
    spent = {agent: usage.model_dump() for agent, usage in ledger.usage.items()}
    return ApplicationError(err.message, {SPENT_DETAIL: spent}, type=err.type,
                            non_retryable=err.non_retryable)
