"""Fan-out / fan-in: branches run in parallel as child workflows, then one synthesis.

Each branch (an agent, or a whole team) is its own child workflow with an id
derived from this run's id, so a failed branch is retried or inspected on its own
and never re-runs its siblings. The policy decides how many branches must succeed:
`all`, `quorum` (at least `quorum`), or `best_effort` (at least one). Branch
outputs are merged by `merge_branches` and handed to the synthesizer; if the
synthesizer fails, the merged findings are the (degraded) answer.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from baton.messages import Message
    from baton.runs import BranchOutcome, FanOutResult, RunInput, RunResult
    from baton.specs import FanOutTeam

from workflows.agent_call import AgentFailed, RunLedger, run_agent
from workflows.members import run_member

# Temporal allows 2,000 pending children per workflow; start them in batches well below.
CHILD_BATCH = 500


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
        team = run.catalogue.teams[run.member]
        assert isinstance(team, FanOutTeam)
        ledger = RunLedger(run)
        self._total = len(team.branches)
        workflow.set_current_details(f"running {self._total} branches")

        outcomes: list[BranchOutcome] = []
        for start in range(0, len(team.branches), CHILD_BATCH):
            batch = team.branches[start:start + CHILD_BATCH]
            outcomes += await asyncio.gather(*(self._branch(ledger, b, run) for b in batch))

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

    async def _branch(self, ledger: RunLedger, branch: str, run: RunInput) -> BranchOutcome:
        try:
            result: RunResult = await run_member(ledger, branch, run.messages, as_child=True)
        except AgentFailed as err:
            outcome = BranchOutcome(branch=branch, ok=False, error=err.reason)
        else:
            ledger.step("branch", branch, f"{result.pattern} finished: {result.status}")
            outcome = BranchOutcome(branch=branch, ok=True, answer=result.answer,
                                    output=result.output)
        self._finished += 1
        return outcome


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
