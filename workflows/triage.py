"""Triage: a cheap router picks one declared specialist and hands over the conversation.

The router answers a `RouteDecision` whose `route` is an enum of its declared
handoffs, and the workflow checks the route again: a route outside the list, or a
router that fails, sends the conversation to the declared default, never
anywhere else. With `nest_handoff_history` the specialist receives one message
holding a transcript of the earlier turns instead of the turns themselves.
If the chosen specialist fails, the default specialist answers (status degraded).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from baton.contracts import RouteDecision, route_schema
    from baton.errors import AgentFailed
    from baton.model_io import Message
    from baton.runs import RunInput, TriageResult
    from baton.specs import TriageTeam
    from baton.text import shorten

from baton.workflows.agent_call import run_agent
from baton.workflows.base import PatternWorkflow
from baton.workflows.ledger import RunLedger
from baton.workflows.members import run_member

# Each earlier turn keeps at most this much text inside a nested transcript.
NESTED_TURN_CHARS = 600


@workflow.defn
class TriageWorkflow(PatternWorkflow):
    pattern = "triage"

    @workflow.run
    async def run(self, run: RunInput) -> TriageResult:
        return await self.execute(run, TriageResult, self._triage)

    async def _triage(self, ledger: RunLedger) -> TriageResult:
        run = ledger.run
        team = run.catalogue.teams[run.member]
        assert isinstance(team, TriageTeam)
        router = run.catalogue.agents[team.router]
        targets = list(router.handoffs)
        default = router.default_handoff or targets[0]
        self.set_phase("routing", f"{router.name} is routing among {', '.join(targets)}")

        def declared(decision: BaseModel) -> str | None:
            assert isinstance(decision, RouteDecision)
            if decision.route in targets:
                return None
            return f"route {decision.route!r} is not one of {targets}"

        try:
            reply = await run_agent(ledger, router, run.messages,
                                    schema=route_schema(targets), accept=declared)
            assert isinstance(reply.output, RouteDecision)
            route, reason = reply.output.route, reply.output.reason
        except AgentFailed as err:
            route, reason = default, f"router failed, sent to the default: {err.reason}"
            ledger.degrade(f"router {router.name} failed; used default {default}")
        ledger.step("handoff", router.name, f"-> {route}: {reason}")

        self.set_phase(f"handled by {route}", f"{route} is answering")
        messages = nest_history(run.messages) if team.nest_handoff_history else run.messages
        handled_by = route
        try:
            answer = await run_member(ledger, route, messages)
        except AgentFailed as err:
            if route == default:
                raise
            ledger.degrade(f"{route} failed ({err.reason}); the default {default} answered")
            ledger.step("handoff", router.name, f"-> {default}: fallback after {route} failed")
            handled_by = default
            answer = await run_member(ledger, default, messages)
        return TriageResult(pattern="triage", answer=answer.answer, output=answer.output,
                            handled_by=handled_by, route_reason=reason,
                            **ledger.result_fields())


def nest_history(messages: list[Message]) -> list[Message]:
    """Earlier turns folded into one transcript message, followed by the latest request."""
    if len(messages) <= 1:
        return list(messages)
    lines = []
    for message in messages[:-1]:
        who = message.agent or message.role
        lines.append(f"{who}: {shorten(message.content, NESTED_TURN_CHARS)}")
    transcript = "\n".join(lines)
    return [Message(role="user", content=(
        f"<conversation_history>\n{transcript}\n</conversation_history>\n\n"
        f"{messages[-1].content}"))]
