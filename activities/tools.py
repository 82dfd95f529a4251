"""The activities of user tools, and where each worker serves them.

Each tool call is one activity named after the tool. It validates the model's
arguments against the function's types before calling it (invalid arguments come
back to the model as an error result, and the function never sees them),
heartbeats while the function runs, and renders the result as the text the model
will read, cut above the tool's size limit so that histories stay far from
Temporal's payload limit. An exception from the function is left to Temporal:
retried by the tool's policy, or at once final when it is a non-retryable
`ApplicationError`.

Where: a worker serves each tool on the task queue of the tool's identity (its
name and schema fingerprint, `ToolDef.task_queue`), with a small activity-only
worker beside it (`ToolWorkers`), so a call never reaches another app's function
of the same name or an older version on a stale worker. The worker itself keeps
what runs inside a workflow task: local tools, approval policies and the check
that some live worker serves a tool (`TOOL_CHECK_ACTIVITY`); each refuses a call
made for a schema it does not have (`TOOL_NOT_SERVED`), and the workflow then
sends the call to the tool's queue (workflows/tool_calls.py).

Who else serves a tool of the same name: the server lists a task queue's pollers but
no worker's queues, so each worker also polls the tool's presence queue (its name
alone, `tool_presence_queue`; nothing runs there) under an identity that names the
schema it serves. A worker starting reads that list first and logs a warning for
every worker seen there with another schema (warn_of_other_schemas): both are served
and no run reaches the wrong function, but one of them is usually a stale worker or
another app that will surprise someone.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from temporalio import activity
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.api.taskqueue.v1 import PollerInfo, TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    PollActivityTaskQueueRequest,
    RespondActivityTaskFailedRequest,
)
from temporalio.client import Client
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Plugin, ReplayerConfig, Worker, WorkerConfig

from baton.activities.heartbeat import heartbeating
from baton.core.contracts import contract_model
from baton.core.errors import ApprovalMissing
from baton.core.tools import (
    APPROVAL_POLICY_ACTIVITY,
    TOOL_CHECK_ACTIVITY,
    TOOL_NOT_SERVED,
    Tool,
    ToolCheck,
    ToolContext,
    ToolInvocation,
    ToolOutcome,
    describe_parameters,
    render_result,
    schema_fingerprint,
    tool_presence_queue,
    tool_task_queue,
)
from baton.telemetry.metrics import metered_tool
from baton.telemetry.observability import tool_call_span

# How long a tool's worker may take to poll for the first time before its block runs.
POLL_WAIT_S = 5.0
# How long the serving check waits for a poller before it calls a tool unserved.
CHECK_WAIT_S = 3.0
# A worker announcing a tool polls its presence queue at least this often while it
# runs: nothing is scheduled there to keep its one slot busy, and the server answers a
# long poll within a minute. An older last poll is a worker that has stopped.
LIVE_POLL_S = 70.0
# How much of a schema's signature an announcing worker's identity carries (the server
# refuses identities above 1,000 characters).
ANNOUNCED_SIGNATURE_CHARS = 300
# An announcing poll's deadline (the server answers an idle poll after 60 s) and the
# pause before polling again after an error.
LONG_POLL_TIMEOUT = timedelta(seconds=70)
ANNOUNCE_RETRY_S = 1.0
# What a task scheduled on a presence queue gets.
_NOTHING_RUNS_HERE = Failure(
    message="a tool's presence queue runs nothing: it only lists who serves the tool",
    application_failure_info=ApplicationFailureInfo(type="NotFoundError", non_retryable=True))
log = logging.getLogger(__name__)
# What a tool's own worker copies from the worker it serves beside: its activity
# slots, polling, shutdown grace and interceptors (tracing), so a tool call is
# served as it was when it ran on the main worker.
SHARED_OPTIONS = ("max_concurrent_activities", "activity_task_poller_behavior",
                  "graceful_shutdown_timeout", "interceptors", "identity")


def tool_activities(tools: Sequence[Tool]) -> list[Callable[..., Any]]:
    """What the worker running the workflows registers for `tools`: every tool (tried
    here first: a call to the workflow's own queue is handed to this worker eagerly,
    with no trip through the server's matching; measured 16-19 ms per call here
    against 22-25 ms on the tool's own queue, bench/tool_bench.py), the approval
    policies and the serving check. Each tool is also served on its own queue
    (ToolWorkers), where a call goes when a worker without its schema refuses it."""
    served = _by_name(tools)
    activities = [_activity_for(t) for t in served.values()]
    activities.append(_check_activity(served))
    policies = {name: tool for name, tool in served.items() if tool.approval_policy is not None}
    if policies:
        activities.append(_policy_activity(policies))
    return activities


def own_queue_activities(tool: Tool) -> list[Callable[..., Any]]:
    """What the worker on the tool's own queue registers: the tool, and its policy."""
    activities = [_activity_for(tool)]
    if tool.approval_policy is not None:
        activities.append(_policy_activity({tool.name: tool}))
    return activities


class ToolWorkers(Plugin):
    """A worker plugin serving each tool on its own queue, beside the worker it is given
    to (started before it polls, stopped after it stops); and registering on that
    worker what runs inside workflow tasks (tool_activities)."""

    def __init__(self, tools: Sequence[Tool]) -> None:
        self.tools = list(_by_name(tools).values())

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        config["activities"] = refusing_unknown(
            [*config.get("activities", ()), *tool_activities(self.tools)])
        return config

    async def run_worker(self, worker: Worker, next: Callable[[Worker], Awaitable[None]]) -> None:
        await self.serve_beside(worker, next)

    async def serve_beside(self, worker: Worker,
                           next: Callable[[Worker], Awaitable[None]]) -> None:
        """Run `next(worker)` with every tool served on its own queue meanwhile."""
        options = {k: v for k, v in worker.config(active_config=True).items()
                   if k in SHARED_OPTIONS}
        async with serving_tools(worker.client, worker.task_queue, self.tools, **options):
            await next(worker)

    def configure_replayer(self, config: ReplayerConfig) -> ReplayerConfig:
        return config

    def run_replayer(self, replayer: Any, histories: Any, next: Any) -> Any:
        return next(replayer, histories)


@asynccontextmanager
async def serving_tools(client: Client, task_queue: str, tools: Sequence[Tool],
                        **options: Any) -> AsyncIterator[list[Worker]]:
    """Each tool served on its own queue for runs on `task_queue`, while inside: one
    activity-only worker per tool (a fatal error in one ends the block)."""
    # The client's plugins shaped the worker these serve beside; applied again they
    # would register Baton's workflows on every tool's queue.
    config = client.config(active_config=True)
    config["plugins"] = []
    bare = Client(**config)
    served = list(_by_name(tools).values())
    workers = [Worker(bare, task_queue=tool.definition.task_queue(task_queue),
                      activities=own_queue_activities(tool), **options)
               for tool in served]
    identity = options.get("identity") or bare.identity
    # Read before announcing, so that this worker does not see itself.
    await warn_of_other_schemas(bare, task_queue, served)
    announced = {tool_presence_queue(task_queue, t.name): _announcing(identity, t)
                 for t in served}
    async with AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        for queue, as_who in announced.items():
            announcing = asyncio.create_task(_announce(bare, queue, as_who))
            stack.push_async_callback(_stop, announcing)
        # Polling before the block starts: a serving check or a schema warning made by
        # another worker right away finds them (a first poll takes a few milliseconds).
        await asyncio.gather(
            *(_until_polled(bare, w.task_queue, POLL_WAIT_S) for w in workers),
            *(_until_polled(bare, queue, POLL_WAIT_S, identity=as_who)
              for queue, as_who in announced.items()))
        yield workers


def _announcing(identity: str, tool: Tool) -> str:
    """The identity under which the worker `identity` announces `tool`: it names the
    schema, readable and as a fingerprint (`_announced` reads it back)."""
    signature = describe_parameters(tool.definition.parameters)
    if len(signature) > ANNOUNCED_SIGNATURE_CHARS:
        signature = signature[:ANNOUNCED_SIGNATURE_CHARS - 1] + "…"
    return f"{identity} {tool.name}({signature})@{tool.definition.fingerprint}"


async def _announce(client: Client, presence_queue: str, identity: str) -> None:
    """Poll a tool's presence queue as `identity` until cancelled, for workers started
    later to read (warn_of_other_schemas); a task found there (nothing schedules one)
    is failed at once. Hand-written rather than a Worker: the SDK refuses a second
    worker on one task queue through one client, and two apps' workers in one process
    (tests, a BatonPlugin per app) announce one tool name on one presence queue. It
    costs one pending poll and stops at once (cancelling its poll)."""
    request = PollActivityTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=presence_queue),
        identity=identity)
    while True:
        try:
            task = await client.workflow_service.poll_activity_task_queue(
                request, timeout=LONG_POLL_TIMEOUT)
            if task.task_token:
                await client.workflow_service.respond_activity_task_failed(
                    RespondActivityTaskFailedRequest(
                        namespace=client.namespace, task_token=task.task_token,
                        identity=identity, failure=_NOTHING_RUNS_HERE))
        except RPCError as err:
            # The server away (restarting) or the poll's deadline passed: poll again.
            log.debug("announcing on %s: %s", presence_queue, err)
            await asyncio.sleep(ANNOUNCE_RETRY_S)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


async def warn_of_other_schemas(client: Client, task_queue: str, tools: Sequence[Tool]) -> int:
    """Log a warning for each worker that lately announced one of `tools` on
    `task_queue` with another schema; how many were logged."""
    found = await asyncio.gather(*(_other_schemas(client, task_queue, t) for t in tools))
    warnings = [_other_schema_warning(task_queue, tool, poller)
                for tool, pollers in zip(tools, found, strict=True) for poller in pollers]
    for warning in warnings:
        log.warning(warning)
    return len(warnings)


async def _other_schemas(client: Client, task_queue: str, tool: Tool) -> list[PollerInfo]:
    """The pollers of `tool`'s presence queue that announce another schema."""
    try:
        pollers = await _pollers(client, tool_presence_queue(task_queue, tool.name))
    except RPCError:
        return []  # a server that cannot answer now: no warning rather than no worker
    return [p for p in pollers or ()
            if (announced := _announced(tool.name, p.identity)) is not None
            and announced[2] != tool.definition.fingerprint]


def _announced(name: str, identity: str) -> tuple[str, str, str] | None:
    """(worker identity, signature, fingerprint) from an announcer's identity for `name`."""
    match = re.fullmatch(rf"(.*?) {re.escape(name)}\((.*)\)@([0-9a-f]{{12}})", identity,
                         flags=re.DOTALL)
    return (match[1], match[2], match[3]) if match else None


def _other_schema_warning(task_queue: str, tool: Tool, poller: PollerInfo) -> str:
    """What an operator should know of `poller`, which announced `tool` with another
    schema: both signatures, who and how lately, what it means and what to do."""
    other, signature, fingerprint = _announced(tool.name, poller.identity) or ("", "", "")
    age_s = max(0, round(time.time() - poller.last_access_time.ToSeconds()))
    since = (f"it last polled {age_s} s ago, so it has stopped (the server forgets a "
             "stopped worker's polls after a few minutes)" if age_s > LIVE_POLL_S else
             f"it polled within the last {max(age_s, 1)} s: it is running, or stopped "
             "since (the server lists a stopped worker for a few minutes; if that worker "
             "is this app's previous run, nothing needs doing)")
    mine = tool.definition
    return (
        f"tool {tool.name!r} has another schema on task queue {task_queue!r}:\n"
        f"  this worker serves   {tool.name}({describe_parameters(mine.parameters)}) "
        f"[schema {mine.fingerprint}]\n"
        f"  worker {other!r} serves {tool.name}({signature}) [schema {fingerprint}]; "
        f"{since}.\n"
        "  Each run's calls reach the function whose schema its model was offered: runs "
        "offered the other schema go to that worker, and fail with ToolUnavailable when "
        "no worker serves it any more. A stale worker (started before the tool changed) "
        "should be stopped; another app's tool of the same name is best renamed "
        "(@baton.tool(name=...)) or its app run on a task queue of its own "
        "(BATON_TASK_QUEUE).")


@activity.defn(dynamic=True)
async def unregistered_activity(args: Sequence[RawValue]) -> None:
    """Any activity this worker does not have: refused as Temporal itself would
    (NotFoundError). Registered so that a workflow may name a local tool or policy the
    worker lacks (another app's, on a shared queue): the SDK would otherwise fail the
    whole workflow task at once, before the call could be sent where it is served."""
    del args
    name = activity.info().activity_type
    raise ApplicationError(f"activity {name!r} is not registered on this worker",
                           type="NotFoundError")


def refusing_unknown(activities: Sequence[Callable[..., Any]]) -> list[Callable[..., Any]]:
    """`activities` with unregistered_activity, unless one of them is a dynamic activity
    already (the worker owner's: it then answers for names the worker lacks)."""
    def dynamic(fn: Callable[..., Any]) -> bool:
        # How activity.defn marks a function (temporalio keeps no public accessor).
        definition = getattr(fn, "__temporal_activity_definition", None)
        return definition is not None and definition.name is None

    if any(dynamic(fn) for fn in activities):
        return list(activities)
    return [*activities, unregistered_activity]


def _by_name(tools: Sequence[Tool]) -> dict[str, Tool]:
    """The tools by name; two different tools with one name are refused."""
    seen: dict[str, Tool] = {}
    for tool in tools:
        if tool.name in seen and seen[tool.name] is not tool:
            raise ValueError(f"two tools are named {tool.name!r}: {seen[tool.name].fn!r} and "
                             f"{tool.fn!r}; give one another name with @tool(name=...)")
        seen[tool.name] = tool
    return seen


def _refuse_other_schemas(tool: Tool | None, name: str, schema_id: str | None) -> Tool:
    """`tool` when it has the schema the call was made for; otherwise TOOL_NOT_SERVED."""
    if tool is None or (schema_id is not None and schema_id != tool.definition.fingerprint):
        here = (f"this worker's {name} has schema {tool.definition.fingerprint}"
                if tool is not None else f"this worker has no tool {name!r}")
        raise ApplicationError(f"the call was made for {name} with schema {schema_id}; {here}",
                               type=TOOL_NOT_SERVED, non_retryable=True)
    return tool


def _check_activity(tools: dict[str, Tool]) -> Callable[..., Any]:
    @activity.defn(name=TOOL_CHECK_ACTIVITY)
    async def tool_check(check: ToolCheck) -> str:
        """"" when a live worker serves the tool with exactly the offered schema; else
        why not, naming both schemas."""
        wanted = schema_fingerprint(check.parameters)
        mine = tools.get(check.tool)
        if mine is not None and mine.definition.fingerprint == wanted:
            return ""
        queue = tool_task_queue(activity.info().task_queue, check.tool, wanted)
        # Waiting a little: just after a server restart, workers are polling again.
        if await _until_polled(activity.client(), queue, CHECK_WAIT_S):
            return ""
        offered = f"{check.tool}({describe_parameters(check.parameters)}) [schema {wanted}]"
        here = (f"this worker serves {check.tool}"
                f"({describe_parameters(mine.definition.parameters)}) "
                f"[schema {mine.definition.fingerprint}]" if mine is not None
                else f"this worker has no tool {check.tool!r}")
        return (f"the model was offered {offered} and no live worker serves that schema "
                f"(none polls {queue!r}; {here}). A stale worker started before the tool "
                "changed, or another app's worker with a tool of the same name, may be "
                "what is running: start a worker with the module that defines this "
                "version (python worker.py --app MODULE) and stop stale ones")

    return tool_check


async def _pollers(client: Client, task_queue: str) -> Sequence[PollerInfo] | None:
    """Who polled the task queue for activities lately (the server keeps its pollers for
    a few minutes after their last poll); None when the server will not say (a key
    without the permission, a server without the call). Any other RPCError (the server
    restarting, a deadline under load) is raised: the answer is only late."""
    try:
        answer = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY))
    except RPCError as err:
        if err.status in (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED):
            return None
        raise
    return answer.pollers


async def _until_polled(client: Client, task_queue: str, wait_s: float,
                        identity: str | None = None) -> bool:
    """Whether a worker (the one of `identity`, if given) polls `task_queue` lately, a
    worker restarting just now included, waiting up to `wait_s` for one. When the
    server will not say, or never answers in that time, assume one does: the call then
    waits for its worker as any activity would, rather than fail on a server's hiccup."""
    deadline = time.monotonic() + wait_s
    pause = 0.05  # a worker starting beside us polls within milliseconds; others later
    answered = False
    while True:
        try:
            pollers = await _pollers(client, task_queue)
        except RPCError as err:
            log.debug("describing %s: %s", task_queue, err)
        else:
            if pollers is None or any(identity in (None, p.identity) for p in pollers):
                return True
            answered = True
        if time.monotonic() >= deadline:
            return not answered
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.5)


def _policy_activity(tools: dict[str, Tool]) -> Callable[..., Any]:
    @activity.defn(name=APPROVAL_POLICY_ACTIVITY)
    async def approval_policy(invocation: ToolInvocation) -> bool:
        """Whether this call needs a person; invalid arguments need none (they never run)."""
        tool = _refuse_other_schemas(tools.get(invocation.tool), invocation.tool,
                                     invocation.schema_id)
        try:
            arguments = tool.validate(invocation.arguments)
        except ValidationError:
            return False
        return tool.needs_approval(arguments)

    return approval_policy


def _activity_for(tool: Tool) -> Callable[..., Any]:
    async def run_tool(invocation: ToolInvocation) -> ToolOutcome:
        info = activity.info()
        _refuse_other_schemas(tool, tool.name, invocation.schema_id)
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
