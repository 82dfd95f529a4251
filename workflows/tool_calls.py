"""Where a workflow sends a tool call: to a worker whose function has the schema the
model was offered, and nowhere else.

Workers serve each tool on the task queue of its identity, the tool's name and schema
fingerprint (activities/tools.py), so two apps with a `get_weather` each on one task
queue never run each other's, and a worker left running with an older version of a
tool (a stale worker) never receives a call made for the new one. Every call (a tool,
local or not, and a tool's approval policy) is tried on the run's own queue first,
where the worker running the workflow takes it eagerly; a worker there without that
exact schema refuses it (`TOOL_NOT_SERVED`, or Temporal's NotFoundError) and the call
goes to the tool's queue. Before a run's first call of a tool, its worker checks that
some live worker serves that schema (a recorded local activity; for the tools of a
catalogue that carries their `schema_id`, so runs recorded before it replay
unchanged): otherwise the run fails at once with `ToolUnavailable` naming both
schemas, rather than waiting for a worker that will never come. A flow's tools are its
own worker's, so a flow's calls are not checked.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    from baton.core.errors import ToolUnavailable
    from baton.core.tools import (
        APPROVAL_POLICY_ACTIVITY,
        TOOL_CHECK_ACTIVITY,
        TOOL_NOT_SERVED,
        ToolCheck,
        ToolDef,
        ToolInvocation,
        ToolOutcome,
    )

from baton.workflows.ledger import RunLedger
from baton.workflows.toolbox import retry_policy

# A worker that has no function of that name at all fails the call with this type.
NOT_FOUND = "NotFoundError"
REFUSED_HERE = [TOOL_NOT_SERVED, NOT_FOUND]
# A policy is a quick predicate of the arguments; the check one DescribeTaskQueue.
POLICY_TIMEOUT = timedelta(seconds=10)
CHECK_TIMEOUT = timedelta(seconds=10)


async def ensure_served(ledger: RunLedger, tool: ToolDef) -> None:
    """Fail the run with ToolUnavailable unless a live worker serves the tool's exact
    schema (checked once per run and tool)."""
    identity = f"{tool.name}@{tool.fingerprint}"
    if tool.schema_id is None or identity in ledger.tools_served:
        return  # a catalogue from before fingerprints (a recorded run replays without)
    try:
        problem: str = await _locally(
            TOOL_CHECK_ACTIVITY, ToolCheck(tool=tool.name, parameters=tool.parameters),
            result_type=str, start_to_close_timeout=CHECK_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=1), summary=f"who serves {tool.name}")
    except ActivityError:
        return  # no answer (a worker older than the check): the call goes ahead unchecked
    if problem:
        raise ToolUnavailable(f"tool {tool.name!r}", workflow.info().task_queue,
                              detail=problem)
    ledger.tools_served.add(identity)


async def execute_tool(tool: ToolDef, invocation: ToolInvocation, *, summary: str,
                       schedule_to_close: timedelta, local: bool) -> ToolOutcome:
    """One call of a function tool: its activity (`local`: on this worker first), with
    the tool's timeout, retries and heartbeat."""
    invocation.schema_id = tool.fingerprint
    timeout = timedelta(seconds=tool.timeout_s)
    policy = retry_policy(tool.max_attempts, 1.0, 2.0, 30.0, REFUSED_HERE)
    heartbeat = timedelta(seconds=tool.heartbeat_s) if tool.heartbeat_s is not None else None
    try:
        # On this run's own queue first: usually the worker running the workflow, which
        # takes the task eagerly; a worker there without this schema refuses it.
        if local:
            done: ToolOutcome = await _locally(
                tool.name, invocation, result_type=ToolOutcome, start_to_close_timeout=timeout,
                schedule_to_close_timeout=schedule_to_close, retry_policy=policy,
                summary=summary)
        else:
            done = await workflow.execute_activity(
                tool.name, invocation, result_type=ToolOutcome,
                start_to_close_timeout=timeout, schedule_to_close_timeout=schedule_to_close,
                retry_policy=policy, summary=summary, heartbeat_timeout=heartbeat)
        return done
    except ActivityError as err:
        if not _refused_here(err):
            raise
    try:
        outcome: ToolOutcome = await workflow.execute_activity(
            tool.name, invocation, result_type=ToolOutcome,
            task_queue=tool.task_queue(workflow.info().task_queue),
            start_to_close_timeout=timeout, schedule_to_close_timeout=schedule_to_close,
            retry_policy=policy, summary=summary, heartbeat_timeout=heartbeat)
    except ActivityError as err:
        if _refused_here(err):
            # Only workers with this schema poll its queue: a set-up nobody can retry away.
            raise ToolUnavailable(f"tool {tool.name!r}", workflow.info().task_queue) from None
        raise
    return outcome


async def policy_asks_a_person(tool: ToolDef, invocation: ToolInvocation) -> bool:
    """The worker's approval policy of the tool for these arguments: on this worker when
    it serves the schema, else on the tool's queue (recorded either way)."""
    invocation.schema_id = tool.fingerprint
    summary = f"approval policy of {tool.name}"
    # A policy that raises is retried as before; a worker without it refuses at once.
    policy = RetryPolicy(non_retryable_error_types=REFUSED_HERE)
    try:
        decided: bool = await _locally(
            APPROVAL_POLICY_ACTIVITY, invocation, result_type=bool,
            start_to_close_timeout=POLICY_TIMEOUT, retry_policy=policy, summary=summary)
        return decided
    except ActivityError as err:
        if not _refused_here(err):
            raise
    needed: bool = await workflow.execute_activity(
        APPROVAL_POLICY_ACTIVITY, invocation, result_type=bool,
        task_queue=tool.task_queue(workflow.info().task_queue),
        start_to_close_timeout=POLICY_TIMEOUT, retry_policy=policy, summary=summary)
    return needed


async def _locally(activity: str, argument: object, **options: Any) -> Any:
    """A local activity whose failure is raised as an ActivityError, as a scheduled
    activity's is (temporalio 1.35 raises a local activity's bare cause in the
    workflow), so callers handle one shape: the error, its cause inside."""
    try:
        return await workflow.execute_local_activity(activity, argument, **options)
    except (ActivityError, CancelledError):
        raise
    except FailureError as err:
        raise ActivityError(
            f"local activity {activity} failed", scheduled_event_id=0, started_event_id=0,
            identity="", activity_type=activity, activity_id="", retry_state=None) from err


def _refused_here(err: ActivityError) -> bool:
    """The worker that got the call has no function with the call's schema."""
    cause = err.cause
    return isinstance(cause, ApplicationError) and cause.type in REFUSED_HERE
