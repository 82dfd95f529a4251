"""Fan-out / fan-in: branches run in parallel as child workflows, then one synthesis.

The branches are the team's static `branches` (each gets the request), the
subtasks a planner agent splits the request into (a coordinator: each subtask,
bounded by `max_branches`, goes to one of the team's `members` as its prompt), or
one per item the caller gives (`map_member`). A planner answers `baton.Plan`, or a
model of the user's that the team's `plan` function or `plan_field` maps to
subtasks. Each branch (an agent, or a whole team) is its own child workflow with
an id derived from this run's id, so a failed branch is retried or inspected on
its own and never re-runs its siblings.
Above `SHARD_SIZE` branches the fan-out becomes a two-level tree: shard workflows
each start a slice of the branch children. One workflow with hundreds of pending
children makes every update of it slower (the server rewrites and re-checks its
state on each child event); measured here at 500 branches, see
docs/benchmarks.md. The policy decides how many branches must succeed: `all`,
`quorum` (at least `quorum`), or `best_effort` (at least one). Branch outputs are
merged by the reducer (`merge_branches`, or the team's `reducer` function) and
handed to the synthesizer (with the team's `synthesizer_prompt` function, in a
prompt of the user's); if the synthesizer fails, the merged findings are the
(degraded) answer. The user's functions run here, inside the workflow
(baton/core/team_hooks.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from baton.core.contracts import (
        Findings,
        Plan,
        Subtask,
        contract_model,
        contract_name,
        is_contract,
        plan_schema,
    )
    from baton.core.errors import AgentFailed, BudgetExhausted, FanOutPolicyNotMet, PlanFailed
    from baton.core.model_io import Message
    from baton.core.runs import BranchOutcome, BranchTask, FanOutResult, RunInput, ShardInput
    from baton.core.specs import FanOutTeam
    from baton.core.team_hooks import (
        PLANS,
        REDUCERS,
        SYNTHESIZER_PROMPTS,
        Finding,
        call_hook,
        text_of,
    )

from baton.workflows.agent_call import run_agent
from baton.workflows.base import PatternWorkflow
from baton.workflows.ledger import RunLedger
from baton.workflows.members import run_member

# Branches one workflow starts directly; larger fan-outs are split into shards of
# this size (also keeps every workflow far below Temporal's 2,000 pending children).
SHARD_SIZE = 25
# Branches per shard when single-agent branches run as agent calls in the shard: an
# activity costs the server far less than a child workflow, so shards can be larger.
# Measured at N = 500 (docs/benchmarks.md): 50 per shard 4.5 s, 100 3.1 s, 250 4.8 s.
ACTIVITY_SHARD_SIZE = 100


@workflow.defn
class FanOutWorkflow(PatternWorkflow):
    pattern = "fanout"

    def __init__(self) -> None:
        super().__init__()
        self._finished = 0
        self._total = 0

    @workflow.query
    def progress(self) -> str:
        return f"{self._finished}/{self._total} branches finished"

    def progress_counts(self) -> tuple[int, int] | None:
        return (self._finished, self._total) if self._total else None

    @workflow.run
    async def run(self, run: RunInput) -> FanOutResult:
        return await self.execute(run, FanOutResult, self._fan_out)

    async def _fan_out(self, ledger: RunLedger) -> FanOutResult:
        run = ledger.run
        team = run.catalogue.teams[run.member]
        assert isinstance(team, FanOutTeam)
        plan: list[BranchTask] | None = None
        note: str | None = None
        if team.mode == "planned":
            self.set_phase("planning")
            plan, note = await self._plan(ledger, team)
            tasks = plan if plan else [BranchTask(member=b) for b in team.branches]
        elif team.mode == "map":
            tasks, note = _map_tasks(run, team)
        else:
            tasks = [BranchTask(member=b) for b in team.branches]
        self._total = len(tasks)
        self.set_phase(f"running {self._total} branches")

        as_children = team.branch_runs == "child" or (
            team.branch_runs == "auto" and len(tasks) <= SHARD_SIZE)
        if len(tasks) <= (SHARD_SIZE if as_children else ACTIVITY_SHARD_SIZE):
            outcomes = await run_branches(ledger, tasks, self._count, as_children)
        else:
            outcomes = await self._sharded(ledger, tasks, as_children)

        succeeded = [o for o in outcomes if o.ok]
        needed = _required(team, len(tasks))
        if len(succeeded) < needed:
            failed = ", ".join(f"{o.branch} ({o.error})" for o in outcomes if not o.ok)
            raise FanOutPolicyNotMet(
                f"{len(succeeded)} of {len(outcomes)} branches succeeded; policy "
                f"{team.policy!r} needs {needed}. Failed: {failed}")
        if len(succeeded) < len(outcomes):
            ledger.degrade(f"{len(outcomes) - len(succeeded)} branch(es) failed; "
                           f"synthesized from {len(succeeded)}")

        merged = _reduce(run, team, outcomes)
        self.set_phase(f"synthesizing {len(succeeded)} branch results")
        synthesizer = run.catalogue.agents[team.synthesizer]
        request = Message(role="user", content=_synthesizer_prompt(run, team, outcomes, merged))
        output = None
        try:
            reply = await run_agent(ledger, synthesizer, [request])
            answer, output = reply.answer, reply.output_json
            ledger.step("synthesis", synthesizer.name, f"merged {len(succeeded)} branches")
        except AgentFailed as err:
            answer = merged
            ledger.degrade(f"synthesizer failed ({err.reason}); answer is the merged findings")
        return FanOutResult(pattern="fanout", answer=answer, output=output, branches=outcomes,
                            plan=plan, plan_note=note, **ledger.result_fields())

    async def _plan(self, ledger: RunLedger,
                    team: FanOutTeam) -> tuple[list[BranchTask] | None, str | None]:
        """The planner's subtasks, cut to `max_branches`; None when it gave none."""
        assert team.planner is not None
        planner = ledger.run.catalogue.agents[team.planner]
        members = team.members
        contract = planner.contract or contract_name(Plan)
        subtasks_of = _plan_reader(team, planner.name)
        planned: list[list[BranchTask]] = []
        broken: list[PlanFailed] = []

        def usable(answer: BaseModel) -> str | None:
            """A problem the planner is asked to fix, or None. The plan function's own
            faults are kept for after the call (its answer stays recorded) and raised."""
            try:
                tasks = subtasks_of(answer)
            except PlanFailed as err:
                broken.append(err)
                return None
            if not tasks:
                return "the plan has no subtasks; give at least one"
            unknown = sorted({t.member for t in tasks} - set(members))
            if unknown:
                return f"unknown members {unknown}; choose from {members}"
            planned.append(tasks)
            return None

        request = Message(role="user", content=(
            f"Split this request into at most {team.max_branches} independent subtasks, "
            f"each written as a request for one of: "
            + "; ".join(f"{m} ({_describe(ledger.run, m)})" for m in members)
            + f".\n\nRequest: {ledger.run.prompt}"))
        schema = (plan_schema(members, team.max_branches) if is_contract(contract, Plan)
                  else None)
        try:
            await run_agent(ledger, planner, [*ledger.run.messages[:-1], request],
                            contract=contract, accept=usable, schema=schema)
        except AgentFailed as err:
            if not team.branches:
                raise PlanFailed(f"planner {planner.name!r} gave no usable plan: "
                                 f"{err.reason}") from None
            ledger.degrade(f"planner {planner.name} failed ({err.reason}); ran the declared "
                           f"branches {team.branches}")
            return None, None
        if broken:
            raise broken[-1]
        plan = planned[-1]
        note = None
        if len(plan) > team.max_branches:
            note = (f"the planner proposed {len(plan)} subtasks; cut to max_branches "
                    f"{team.max_branches}")
            ledger.degrade(note)
            plan = plan[:team.max_branches]
        ledger.step("plan", planner.name, f"{len(plan)} subtasks: "
                    + "; ".join(f"{t.member}: {t.task[:60] if t.task else ''}" for t in plan))
        return plan, note

    def _count(self) -> None:
        self._finished += 1
        self.emit("progress", done=self._finished, total=self._total)

    async def _sharded(self, ledger: RunLedger, tasks: list[BranchTask],
                       as_children: bool) -> list[BranchOutcome]:
        size = SHARD_SIZE if as_children else ACTIVITY_SHARD_SIZE
        shards = [tasks[i:i + size] for i in range(0, len(tasks), size)]
        share = ledger.check_budget().share(len(shards))
        shard_run = ledger.run.model_copy(
            update={"options": ledger.run.options.model_copy(update={"budget": share})})

        async def shard(index: int, members: list[BranchTask]) -> list[BranchOutcome]:
            result: FanOutResult = await workflow.execute_child_workflow(
                FanOutShardWorkflow.run,
                ShardInput(run=shard_run, tasks=members, as_children=as_children),
                id=f"{workflow.info().workflow_id}/shard-{index + 1}",
                static_summary=f"fan-out shard {index + 1}/{len(shards)}: "
                               f"{len(members)} branches",
            )
            ledger.absorb(result)
            if result.status == "budget_exhausted":
                raise BudgetExhausted(f"in shard {index + 1}")
            self._finished += len(members)
            return result.branches

        nested = await asyncio.gather(*(shard(i, m) for i, m in enumerate(shards)))
        return [outcome for outcomes in nested for outcome in outcomes]


@workflow.defn
class FanOutShardWorkflow:
    """Runs one slice of a large fan-out's branches and reports their outcomes."""

    @workflow.run
    async def run(self, shard: ShardInput) -> FanOutResult:
        ledger = RunLedger(shard.run)
        try:
            outcomes = await run_branches(ledger, shard.tasks, lambda: None, shard.as_children)
        except BudgetExhausted as err:
            return FanOutResult(pattern="fanout-shard", **ledger.stopped_by_budget(err))
        return FanOutResult(pattern="fanout-shard", answer="", branches=outcomes,
                            **ledger.result_fields())


async def run_branches(ledger: RunLedger, tasks: list[BranchTask],
                       on_finish: Callable[[], None],
                       as_children: bool = True) -> list[BranchOutcome]:
    """Every branch at once, each a child workflow (a team always; an agent when
    `as_children`) or an agent call in this workflow; failures become outcomes."""
    catalogue = ledger.run.catalogue

    async def branch(task: BranchTask) -> BranchOutcome:
        messages = (ledger.run.messages if task.task is None
                    else [Message(role="user", content=task.task)])
        agent = catalogue.agents.get(task.member)
        try:
            result = await run_member(ledger, task.member, messages, as_child=as_children,
                                      concurrent=len(tasks))
        except AgentFailed as err:
            outcome = BranchOutcome(branch=task.member, ok=False, error=err.reason,
                                    task=task.task)
        else:
            ledger.step("branch", task.member, f"{result.pattern} finished: {result.status}")
            outcome = BranchOutcome(branch=task.member, ok=True, answer=result.answer,
                                    output=result.output, task=task.task,
                                    contract=agent.contract if agent is not None else None)
        on_finish()
        return outcome

    return list(await asyncio.gather(*(branch(t) for t in tasks)))


def _map_tasks(run: RunInput, team: FanOutTeam) -> tuple[list[BranchTask], str | None]:
    assert team.map_member is not None
    items = run.items or []
    if not items:
        raise PlanFailed(f"team {run.member!r} maps {team.map_member!r} over the caller's "
                         "items, and the run gave none (pass items=[...] or --item)")
    note = None
    if len(items) > team.max_branches:
        note = f"{len(items)} items given; the first max_branches {team.max_branches} ran"
    return [BranchTask(member=team.map_member, task=item)
            for item in items[:team.max_branches]], note


def _required(team: FanOutTeam, branches: int) -> int:
    if team.policy == "all":
        return branches
    if team.policy == "quorum":
        assert team.quorum is not None
        return min(team.quorum, branches)
    return 1


def _describe(run: RunInput, name: str) -> str:
    catalogue = run.catalogue
    spec = catalogue.agents.get(name) or catalogue.teams.get(name)
    return (spec.description if spec is not None else "") or name


def _plan_reader(team: FanOutTeam,
                 planner: str) -> Callable[[BaseModel], list[BranchTask]]:
    """How the planner's answer becomes branch tasks: baton.Plan's subtasks, the team's
    plan function, or its plan_field. Faults of the user's code raise PlanFailed."""
    accepted = ("accepted: a list of strings (each a subtask for the team's one member) "
                "or of baton.Subtask(task=..., member=...)")
    if team.plan is not None:
        name = team.plan
        role = f"planner {planner!r}: the plan function"

        def by_function(answer: BaseModel) -> list[BranchTask]:
            given = call_hook(PLANS, name, role, answer, failure=PlanFailed)
            return _branch_tasks(given, team, f"{role} {name!r}", accepted)

        return by_function
    if team.plan_field is not None:
        field = team.plan_field

        def by_field(answer: BaseModel) -> list[BranchTask]:
            given = getattr(answer, field, None)
            if not isinstance(given, list) or not all(isinstance(t, str) for t in given):
                raise PlanFailed(f"planner {planner!r}: its answer's field {field!r} is "
                                 f"{given!r:.80}; accepted: a list of strings")
            return _branch_tasks(given, team, f"field {field!r} of planner {planner!r}",
                                 accepted)

        return by_field

    def by_plan(answer: BaseModel) -> list[BranchTask]:
        assert isinstance(answer, Plan)
        return [BranchTask(member=s.member, task=s.task) for s in answer.subtasks]

    return by_plan


def _branch_tasks(given: object, team: FanOutTeam, source: str,
                  accepted: str) -> list[BranchTask]:
    """A plan function's (or field's) subtasks as branch tasks; PlanFailed naming
    `source` when they are not a list of strings or Subtasks."""
    if not isinstance(given, list | tuple):
        raise PlanFailed(f"{source} returned {given!r:.80}; {accepted}")
    tasks = []
    for item in given:
        if isinstance(item, Subtask):
            tasks.append(BranchTask(member=item.member, task=item.task))
        elif isinstance(item, str) and item.strip() and len(team.members) == 1:
            tasks.append(BranchTask(member=team.members[0], task=item))
        elif isinstance(item, str) and item.strip():
            raise PlanFailed(f"{source} returned text subtasks, and the team has members "
                             f"{team.members}: return baton.Subtask items to say which "
                             "member does each, or give the team one member")
        else:
            raise PlanFailed(f"{source} returned {item!r:.80} among its subtasks; {accepted}")
    return tasks


def branch_findings(outcomes: list[BranchOutcome]) -> list[Finding]:
    """Every branch's result as the user's functions see it: outputs as their models."""
    return [Finding(branch=o.branch, status="ok" if o.ok else "failed",
                    output=_typed_output(o) if o.ok else None, text=o.answer, task=o.task,
                    error=o.error)
            for o in outcomes]


def _typed_output(outcome: BranchOutcome) -> Any:
    if outcome.contract is not None and outcome.output is not None:
        return contract_model(outcome.contract).model_validate(outcome.output)
    return outcome.answer


def _reduce(run: RunInput, team: FanOutTeam, outcomes: list[BranchOutcome]) -> str:
    """The branches merged into text: the team's reducer, or `merge_branches` of the
    ones that succeeded."""
    if team.reducer is None:
        return merge_branches([o for o in outcomes if o.ok])
    role = f"team {run.member!r}: the reducer"
    return text_of(call_hook(REDUCERS, team.reducer, role, branch_findings(outcomes)), role,
                   team.reducer)


def _synthesizer_prompt(run: RunInput, team: FanOutTeam, outcomes: list[BranchOutcome],
                        merged: str) -> str:
    """What the synthesizer is asked: the team's function of (request, findings), or
    the question with the merged findings."""
    if team.synthesizer_prompt is None:
        ok = sum(o.ok for o in outcomes)
        return f"Question: {run.prompt}\n\nFindings from {ok} researchers:\n{merged}"
    role = f"team {run.member!r}: the synthesizer prompt"
    prompt = call_hook(SYNTHESIZER_PROMPTS, team.synthesizer_prompt, role, run.prompt,
                       branch_findings(outcomes))
    return text_of(prompt, role, team.synthesizer_prompt)


def merge_branches(outcomes: list[BranchOutcome]) -> str:
    """The reducer: one section per branch; `Findings` as summary and points."""
    sections = []
    for outcome in outcomes:
        output = (contract_model(outcome.contract).model_validate(outcome.output)
                  if outcome.contract is not None and outcome.output is not None else None)
        if isinstance(output, Findings):
            points = "\n".join(f"  - {p}" for p in output.key_points)
            body = f"{output.summary} (confidence {output.confidence})\n{points}"
        else:
            body = outcome.answer
        title = outcome.branch if outcome.task is None else f"{outcome.branch}: {outcome.task}"
        sections.append(f"## {title}\n{body}")
    return "\n\n".join(sections)
