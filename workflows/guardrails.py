"""Checking guardrails from a workflow: a function guardrail is an activity, an agent
guardrail a `run_agent` call with the `GuardrailVerdict` contract.

A guardrail that cannot give a verdict (it raised after its retries, or its agent
failed) counts as tripped: a check that cannot be made does not let text through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from baton.contracts import GuardrailVerdict
    from baton.errors import AgentFailed, GuardrailTripped
    from baton.guardrails import GUARDRAIL_ACTIVITY_PREFIX, GuardrailCheck, Where
    from baton.model_io import Message
    from baton.text import shorten

from baton.workflows.agent_call import NO_TOOLS, run_agent
from baton.workflows.ledger import RunLedger


async def check_guardrails(ledger: RunLedger, names: Sequence[str], where: Where,
                           text: str, owner: str) -> None:
    """Run the guardrails concurrently; raise GuardrailTripped for the first that trips."""
    if not names:
        return
    verdicts = await asyncio.gather(*(_verdict(ledger, n, where, text, owner) for n in names))
    for name, verdict in zip(names, verdicts, strict=True):
        outcome = "passed" if verdict.allowed else f"tripped: {verdict.reason}"
        ledger.step("guardrail", owner, f"{name} on the {where}: {outcome}", ok=verdict.allowed)
    for name, verdict in zip(names, verdicts, strict=True):
        if not verdict.allowed:
            ledger.blocked = f"guardrail {name} on the {where}: {verdict.reason}"
            raise GuardrailTripped(name, where, verdict.reason)


async def _verdict(ledger: RunLedger, name: str, where: Where, text: str,
                   owner: str) -> GuardrailVerdict:
    guard = ledger.run.catalogue.guardrail(name)
    if guard.kind == "agent":
        assert guard.agent is not None
        judge = ledger.run.catalogue.agents[guard.agent]
        request = Message(role="user", content=(
            f"Judge this {where} of {owner}:\n<text>\n{text}\n</text>"))
        try:
            reply = await run_agent(ledger, judge, [request], contract="GuardrailVerdict",
                                    toolbox=NO_TOOLS)
        except AgentFailed as err:
            return GuardrailVerdict(allowed=False, reason=f"the guardrail failed: {err.reason}")
        assert isinstance(reply.output, GuardrailVerdict)
        return reply.output
    try:
        verdict: GuardrailVerdict = await workflow.execute_activity(
            GUARDRAIL_ACTIVITY_PREFIX + name,
            GuardrailCheck(guardrail=name, where=where, member=owner, text=text),
            result_type=GuardrailVerdict,
            start_to_close_timeout=timedelta(seconds=guard.timeout_s),
            retry_policy=RetryPolicy(maximum_attempts=3, non_retryable_error_types=[
                "NotFoundError"]),
            summary=f"guardrail {name} on the {where} of {owner}: {shorten(text, 60)}")
    except ActivityError as err:
        cause = err.cause
        reason = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
        return GuardrailVerdict(allowed=False, reason=f"the guardrail failed: {reason}")
    return verdict
