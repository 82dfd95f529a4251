"""Supervisor: a strong model delegates to workers exposed as tools and reviews each result.

Each round the supervisor either calls worker tools (one tool per worker, taking a
`task`) or writes the final answer. Every delegation runs the worker (an agent
activity, or a team as a child workflow) and then asks the supervisor for a
`Review`: accept, revise (same worker, with feedback; at most `max_revisions`), or
reassign (another worker). Reviews past their bound are accepted as they stand and
marked `forced_accept`. After `max_rounds` the supervisor must answer without tools.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from baton.contracts import Review
    from baton.messages import Message, ToolCall, ToolSpec
    from baton.runs import Delegation, RunInput, SupervisorResult
    from baton.specs import AgentSpec, SupervisorTeam

from workflows.agent_call import AgentFailed, BudgetExhausted, RunLedger, run_agent
from workflows.members import run_member

TASK_PARAMETERS = {
    "type": "object",
    "properties": {"task": {"type": "string", "description": "What the worker must do."}},
    "required": ["task"],
    "additionalProperties": False,
}


@workflow.defn
class SupervisorWorkflow:
    def __init__(self) -> None:
        self._delegations: list[Delegation] = []

    @workflow.query
    def delegations(self) -> list[Delegation]:
        return self._delegations

    @workflow.run
    async def run(self, run: RunInput) -> SupervisorResult:
        team = run.catalogue.teams[run.member]
        assert isinstance(team, SupervisorTeam)
        self._team = team
        self._ledger = ledger = RunLedger(run)
        try:
            return await self._supervise(run, ledger)
        except BudgetExhausted as err:
            return SupervisorResult(pattern="supervisor", delegations=self._delegations,
                                    **ledger.stopped_by_budget(err))

    async def _supervise(self, run: RunInput, ledger: RunLedger) -> SupervisorResult:
        team = self._team
        supervisor = run.catalogue.agents[team.supervisor]
        tools = [ToolSpec(name=w, description=_describe_member(run, w),
                          parameters=TASK_PARAMETERS) for w in team.workers]
        conversation = list(run.messages)
        answer: str | None = None
        rounds = 0
        while rounds < team.max_rounds:
            rounds += 1
            workflow.set_current_details(f"round {rounds}/{team.max_rounds}")
            reply = await run_agent(ledger, supervisor, conversation, tools=tools)
            if not reply.tool_calls:
                answer = reply.text
                break
            conversation.append(Message(role="assistant", content=reply.text,
                                        agent=supervisor.name, tool_calls=reply.tool_calls))
            for call in reply.tool_calls:
                result = await self._delegate(supervisor, call)
                conversation.append(Message(role="tool", tool_call_id=call.id,
                                            content=f"[{result.verdict}] {result.answer}"))
        if answer is None:
            ledger.degrade(f"round limit {team.max_rounds} reached; final answer without tools")
            conversation.append(Message(role="user", content=(
                "The round limit is reached. Write the final answer now from the results "
                "above, without delegating.")))
            answer = (await run_agent(ledger, supervisor, conversation)).text
        return SupervisorResult(pattern="supervisor", answer=answer,
                                delegations=self._delegations, rounds=rounds,
                                **ledger.result_fields())

    async def _delegate(self, supervisor: AgentSpec, call: ToolCall) -> Delegation:
        team, ledger = self._team, self._ledger
        task = str(call.arguments.get("task") or ledger.run.prompt)
        worker = call.name
        if worker not in team.workers:
            ledger.step("delegation", supervisor.name, f"unknown worker {worker!r}", ok=False)
            return self._record(Delegation(worker=worker, task=task, verdict="failed", answer=(
                f"There is no worker named {worker!r}; workers: {', '.join(team.workers)}")))
        tried = [worker]
        feedback = ""
        revisions = 0
        while True:
            ledger.step("delegation", supervisor.name, f"-> {worker}: {task[:120]}")
            prompt = task if not feedback else f"{task}\n\nReviewer feedback: {feedback}"
            try:
                result = await run_member(ledger, worker, [Message(role="user", content=prompt)])
            except AgentFailed as err:
                nxt = _untried(team.workers, tried)
                if nxt is None:
                    ledger.degrade(f"every worker failed on: {task[:80]}")
                    return self._record(Delegation(worker=worker, task=task, verdict="failed",
                                                   answer=f"failed: {err.reason}"))
                ledger.degrade(f"{worker} failed; reassigned to {nxt}")
                worker = nxt
                tried.append(worker)
                continue
            review = await self._review(supervisor, worker, task, result.answer)
            ledger.step("review", supervisor.name, f"{worker}: {review.verdict}")
            bounded = revisions >= team.max_revisions
            if review.verdict == "accept" or bounded:
                verdict = "accept" if review.verdict == "accept" else "forced_accept"
                return self._record(Delegation(worker=worker, task=task, verdict=verdict,
                                               answer=result.answer, feedback=review.feedback))
            revisions += 1
            feedback = review.feedback
            if review.verdict == "reassign":
                target = review.reassign_to
                if target not in team.workers or target in tried:
                    target = _untried(team.workers, tried)
                if target is None:
                    return self._record(Delegation(worker=worker, task=task,
                                                   verdict="forced_accept", answer=result.answer,
                                                   feedback="no other worker to reassign to"))
                worker = target
                tried.append(worker)

    async def _review(self, supervisor: AgentSpec, worker: str, task: str,
                      answer: str) -> Review:
        workers = self._team.workers
        schema = Review.model_json_schema()
        schema["properties"]["reassign_to"] = {"anyOf": [{"enum": workers}, {"type": "null"}]}

        def known_worker(review: BaseModel) -> str | None:
            assert isinstance(review, Review)
            if review.reassign_to is not None and review.reassign_to not in workers:
                return f"reassign_to must be one of {workers}"
            return None

        request = Message(role="user", content=(
            f"Give your verdict on the work of {worker} on the task below, with concrete "
            f"feedback. Workers available: {', '.join(workers)}."
            f"\n\nTask: {task}\n\nResult from {worker}:\n{answer}"))
        try:
            reply = await run_agent(self._ledger, supervisor, [request], contract="Review",
                                    schema=schema, accept=known_worker)
        except AgentFailed as err:
            self._ledger.degrade(f"review of {worker} failed ({err.reason}); accepted as is")
            return Review(verdict="accept", feedback="review unavailable; accepted as is")
        assert reply.output is not None
        return Review.model_validate(reply.output)

    def _record(self, delegation: Delegation) -> Delegation:
        self._delegations.append(delegation)
        return delegation


def _untried(workers: list[str], tried: list[str]) -> str | None:
    return next((w for w in workers if w not in tried), None)


def _describe_member(run: RunInput, name: str) -> str:
    catalogue = run.catalogue
    if name in catalogue.agents:
        return catalogue.agents[name].description or f"Delegate a task to {name}."
    return catalogue.teams[name].description or f"Delegate a task to the {name} team."
