"""One activity per user tool, registered under the tool's name.

Each activity validates the model's arguments against the function's types before
calling it (invalid arguments come back to the model as an error result, and the
function never sees them), heartbeats while the function runs, and renders the
result as the text the model will read, cut above the tool's size limit so that
histories stay far from Temporal's payload limit. An exception from the function
is left to Temporal: retried by the tool's policy, or at once final when it is a
non-retryable `ApplicationError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from temporalio import activity

from baton.activities.heartbeat import heartbeating
from baton.contracts import contract_model
from baton.errors import ApprovalMissing
from baton.metrics import metered_tool
from baton.observability import tool_call_span
from baton.tools import (
    APPROVAL_POLICY_ACTIVITY,
    Tool,
    ToolContext,
    ToolInvocation,
    ToolOutcome,
    render_result,
)


def tool_activities(tools: Sequence[Tool]) -> list[Callable[..., Any]]:
    """The activity of each tool; two tools with one name are refused."""
    seen: dict[str, Tool] = {}
    for tool in tools:
        if tool.name in seen and seen[tool.name] is not tool:
            raise ValueError(f"two tools are named {tool.name!r}: {seen[tool.name].fn!r} and "
                             f"{tool.fn!r}; give one another name with @tool(name=...)")
        seen[tool.name] = tool
    activities = [_activity_for(tool) for tool in seen.values()]
    policies = {name: tool for name, tool in seen.items() if tool.approval_policy is not None}
    if policies:
        activities.append(_policy_activity(policies))
    return activities


def _policy_activity(tools: dict[str, Tool]) -> Callable[..., Any]:
    @activity.defn(name=APPROVAL_POLICY_ACTIVITY)
    async def approval_policy(invocation: ToolInvocation) -> bool:
        """Whether this call needs a person; invalid arguments need none (they never run)."""
        tool = tools[invocation.tool]
        try:
            arguments = tool.validate(invocation.arguments)
        except ValidationError:
            return False
        return tool.needs_approval(arguments)

    return approval_policy


def _activity_for(tool: Tool) -> Callable[..., Any]:
    async def run_tool(invocation: ToolInvocation) -> ToolOutcome:
        info = activity.info()
        try:
            arguments = tool.validate(invocation.arguments)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}"
                for e in err.errors())
            return ToolOutcome(ok=False, content=(
                f"Error: invalid arguments for {tool.name}: {problems}. Call it again with "
                "arguments that match its schema."))
        unapproved = invocation.approved_request is None or (
            invocation.approval_timed_out and tool.definition.approval_default != "approve")
        if unapproved and tool.needs_approval(arguments):
            # The workflow asks a person when the run's catalogue says so; the policy
            # that counts is this worker's, so a catalogue saying "never" changes nothing.
            raise ApprovalMissing(tool.name)
        state = (contract_model(invocation.context_model).model_validate(invocation.context)
                 if invocation.context is not None and invocation.context_model else None)
        context = ToolContext(
            context=state,
            workflow_id=info.workflow_id or "", run_id=info.workflow_run_id or "",
            agent=invocation.agent, tool=tool.name, call_id=invocation.call_id,
            attempt=info.attempt,
            # Stable across retries of this call (and its re-run after a crash), unique
            # per call: the workflow, its run (activity ids restart at 1 in each run,
            # and a workflow id comes back after continue-as-new or when reused) and
            # the activity's id within it.
            idempotency_key=f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}")
        started = time.monotonic()
        with tool_call_span(tool, invocation) as span:
            value = await heartbeating(tool.invoke(arguments, context))
            content, truncated = render_result(value, invocation.max_result_chars)
            outcome = ToolOutcome(
                content=content, truncated=truncated,
                elapsed_s=round(time.monotonic() - started, 6),
                value=(TypeAdapter(Any).dump_python(value, mode="json")
                       if invocation.want_value else None),
                context=_changed(state, invocation.context))
            span.outcome(outcome)
        return outcome

    run_tool.__name__ = run_tool.__qualname__ = f"tool_{tool.name}"
    return activity.defn(name=tool.name)(metered_tool(tool.name, run_tool))


def _changed(state: BaseModel | None, before: dict[str, Any] | None) -> dict[str, Any] | None:
    """The context's fields this tool changed (the workflow applies just those, so tools
    of one turn that change different fields do not undo each other)."""
    if state is None or before is None:
        return None
    after = state.model_dump(mode="json")
    changed = {k: v for k, v in after.items() if before.get(k) != v}
    return changed or None
