"""Fan-out / fan-in: branches run in parallel as child workflows, then one synthesis.

Each branch (an agent, or a whole team) is its own child workflow with an id
derived from this run's id, so a failed branch is retried or inspected on its own
and never re-runs its siblings. Above `SHARD_SIZE` branches the fan-out becomes a
two-level tree: shard workflows each start a slice of the branch children. One
workflow with hundreds of pending children makes every update of it slower (the
server rewrites and re-checks its state on each child event); measured here at
500 branches, see docs/benchmarks.md. The policy decides how many branches must succeed:
`all`, `quorum` (at least `quorum`), or `best_effort` (at least one). Branch
outputs are merged by `merge_branches` and handed to the synthesizer; if the
synthesizer fails, the merged findings are the (degraded) answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from baton.messages import Message
    from baton.runs import BranchOutcome, FanOutResult, RunInput, ShardInput
    from baton.specs import FanOutTeam

from workflows.agent_call import AgentFailed, BudgetExhausted, RunLedger, run_agent
from workflows.members import run_member

# Branches one workflow starts directly; larger fan-outs are split into shards of
# this size (also keeps every workflow far below Temporal's 2,000 pending children).
SHARD_SIZE = 25


@workflow.defn
class FanOutWorkflow:
    def __init__(self) -> None:
        self._finished = 0
        self._total = 0

    @workflow.query
    def progress(self) -> str:
        return f"{self._finished}/{self._total} branches finished"

    @workflow.run
    async def run(self, run: RunInput) -> FanOutResult:
        ledger = RunLedger(run)
        try:
            return await self._fan_out(run, ledger)
        except BudgetExhausted as err:
            return FanOutResult(pattern="fanout", **ledger.stopped_by_budget(err))

    async def _fan_out(self, run: RunInput, ledger: RunLedger) -> FanOutResult:
        team = run.catalogue.teams[run.member]
        assert isinstance(team, FanOutTeam)
        self._total = len(team.branches)
        workflow.set_current_details(f"running {self._total} branches")

        if len(team.branches) <= SHARD_SIZE:
            outcomes = await run_branches(ledger, team.branches, self._count)
        else:
            outcomes = await self._sharded(ledger, team.branches)

        succeeded = [o for o in outcomes if o.ok]
        needed = _required(team)
        if len(succeeded) < needed:
            failed = ", ".join(f"{o.branch} ({o.error})" for o in outcomes if not o.ok)
            raise ApplicationError(
                f"{len(succeeded)} of {len(outcomes)} branches succeeded; policy "
                f"{team.policy!r} needs {needed}. Failed: {failed}",
                type="FanOutPolicyNotMet", non_retryable=True)
        if len(succeeded) < len(outcomes):
            ledger.degrade(f"{len(outcomes) - len(succeeded)} branch(es) failed; "
                           f"synthesized from {len(succeeded)}")

        merged = merge_branches(succeeded)
        workflow.set_current_details(f"synthesizing {len(succeeded)} branch results")
        synthesizer = run.catalogue.agents[team.synthesizer]
        request = Message(role="user", content=(
            f"Question: {run.prompt}\n\nFindings from {len(succeeded)} researchers:\n{merged}"))
        try:
            reply = await run_agent(ledger, synthesizer, [request])
            answer = reply.answer
            ledger.step("synthesis", synthesizer.name, f"merged {len(succeeded)} branches")
        except AgentFailed as err:
            answer = merged
            ledger.degrade(f"synthesizer failed ({err.reason}); answer is the merged findings")
        return FanOutResult(pattern="fanout", answer=answer, branches=outcomes,
                            **ledger.result_fields())

    def _count(self) -> None:
        self._finished += 1

    async def _sharded(self, ledger: RunLedger, branches: list[str]) -> list[BranchOutcome]:
        shards = [branches[i:i + SHARD_SIZE] for i in range(0, len(branches), SHARD_SIZE)]
        share = ledger.check_budget().share(len(shards))
        shard_run = ledger.run.model_copy(
            update={"options": ledger.run.options.model_copy(update={"budget": share})})

        async def shard(index: int, members: list[str]) -> list[BranchOutcome]:
            result: FanOutResult = await workflow.execute_child_workflow(
                FanOutShardWorkflow.run,
                ShardInput(run=shard_run, branches=members),
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
            outcomes = await run_branches(ledger, shard.branches, lambda: None)
        except BudgetExhausted as err:
            return FanOutResult(pattern="fanout-shard", **ledger.stopped_by_budget(err))
        return FanOutResult(pattern="fanout-shard", answer="", branches=outcomes,
                            **ledger.result_fields())


async def run_branches(ledger: RunLedger, branches: list[str],
                       on_finish: Callable[[], None]) -> list[BranchOutcome]:
    """Every branch as its own child workflow, all at once; failures become outcomes."""

    async def branch(name: str) -> BranchOutcome:
        try:
            result = await run_member(ledger, name, ledger.run.messages, as_child=True,
                                      concurrent=len(branches))
        except AgentFailed as err:
            outcome = BranchOutcome(branch=name, ok=False, error=err.reason)
        else:
            ledger.step("branch", name, f"{result.pattern} finished: {result.status}")
            outcome = BranchOutcome(branch=name, ok=True, answer=result.answer,
                                    output=result.output)
        on_finish()
        return outcome

    return list(await asyncio.gather(*(branch(b) for b in branches)))


def _required(team: FanOutTeam) -> int:
    if team.policy == "all":
        return len(team.branches)
    if team.policy == "quorum":
        assert team.quorum is not None
        return team.quorum
    return 1


def merge_branches(outcomes: list[BranchOutcome]) -> str:
    """The reducer: one section per branch; structured findings as summary and points."""
    sections = []
    for outcome in outcomes:
        output = outcome.output or {}
        if "summary" in output and "key_points" in output:
            points = "\n".join(f"  - {p}" for p in output["key_points"])
            body = f"{output['summary']} (confidence {output.get('confidence', '?')})\n{points}"
        else:
            body = outcome.answer
        sections.append(f"## {outcome.branch}\n{body}")
    return "\n\n".join(sections)
