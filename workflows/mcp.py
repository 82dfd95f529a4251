"""An agent's MCP tools inside a workflow: recorded tool lists, one activity per call.

`mcp_toolbox` adds the tools of the agent's MCP servers (baton/core/mcp.py) to its
toolbox. A server's list comes from the `baton_mcp_list_tools` activity, once per
run, or again when the list the run holds is older than the server's `refresh`
seconds (checked when an agent starts); it is kept in the run's ledger, and its
activity result is in history, so a replay offers exactly the tools the run was
offered. A server that cannot give its tools fails the agent, typed
`MCPUnavailable`.

`run_mcp_tool` runs one call as its own activity, typed `mcp:SERVER/TOOL`, the way
`run_function_tool` (workflows/agent_call.py) runs a `@baton.tool`: the server's
timeout, retries and heartbeat, a person's approval where the worker's policy asks
for one, the run's tool-call budget, the agent's tool-output guardrails, a step in
the trace; a call that still fails is reported to the model (or fails the agent,
where the server says `on_failure = "fail_agent"`). Calls go to the run's MCP queue
(`QUEUE:mcp`); a stateful server's, to the queue of the worker holding the run's
session, and when no worker takes one there within the server's `session_wait_s`
(that worker is gone), the run lists the server's tools again, which opens a new
session on a live worker, and the call goes there.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from baton.core.errors import MCPUnavailable, ToolUnavailable
    from baton.core.mcp import (
        MCP_LIST_ACTIVITY,
        MCPCall,
        MCPListRequest,
        MCPToolInfo,
        MCPToolList,
        call_activity,
        mcp_task_queue,
    )
    from baton.core.model_io import ToolCall, ToolSpec
    from baton.core.specs import AgentSpec
    from baton.core.text import shorten
    from baton.core.tools import ToolOutcome
    from baton.core.usage import Usage

from baton.workflows.approval import current_desk
from baton.workflows.ledger import RunLedger
from baton.workflows.toolbox import (
    Toolbox,
    ToolHandler,
    ToolRecords,
    describe,
    retry_policy,
    schedule_to_close,
)

# Listing includes starting or reaching the server; the worker bounds that by the
# server's connect_timeout_s (at most 600 s), and a dead worker is noticed by heartbeat.
LIST_TIMEOUT_S = 660.0
LIST_HEARTBEAT = timedelta(seconds=10)
LIST_ATTEMPTS = 3


async def mcp_toolbox(ledger: RunLedger, agent: AgentSpec, toolbox: Toolbox | None,
                      records: ToolRecords) -> Toolbox | None:
    """`toolbox` with the tools of the agent's MCP servers added (a new toolbox when the
    agent has no other tools)."""
    if not agent.mcp:
        return toolbox
    specs = list(toolbox.specs) if toolbox is not None else []
    handlers = dict(toolbox.handlers) if toolbox is not None else {}
    for use in agent.mcp:
        listing = await tool_list(ledger, agent, use.server)
        for pattern in use.unmatched(t.name for t in listing.tools):
            ledger.step("error", agent.name, f"MCP server {use.server} lists no tool matching "
                        f"{pattern!r}; it lists: "
                        f"{', '.join(t.name for t in listing.tools) or 'none'}", ok=False)
        for tool in listing.tools:
            if not use.admits(tool.name):
                continue
            if tool.offered_as in handlers:
                ledger.step("error", agent.name, f"MCP tool {use.server}/{tool.name} is not "
                            f"offered: {agent.name} already has a tool {tool.offered_as}",
                            ok=False)
                continue
            specs.append(ToolSpec(name=tool.offered_as, description=tool.description,
                                  parameters=tool.parameters))
            handlers[tool.offered_as] = _handler(ledger, agent, listing, tool, records)
    if toolbox is None:
        return Toolbox(specs=specs, handlers=handlers, max_turns=agent.max_tool_turns)
    return dataclasses.replace(toolbox, specs=specs, handlers=handlers)


def _handler(ledger: RunLedger, agent: AgentSpec, listing: MCPToolList,
             tool: MCPToolInfo, records: ToolRecords) -> ToolHandler:
    return lambda call: run_mcp_tool(ledger, agent, listing, tool, call, records)


async def tool_list(ledger: RunLedger, agent: AgentSpec, server: str) -> MCPToolList:
    """The server's tools for this run: the list it already holds, unless the server's
    refresh period has passed; else a new one from the worker, recorded."""
    held = ledger.mcp_tools.get(server)
    if held is not None:
        fetched, kept = held
        refresh = kept.policy.refresh
        if refresh == "run" or (workflow.now() - fetched).total_seconds() < refresh:
            return kept
    budget = ledger.check_budget()
    try:
        listing: MCPToolList = await workflow.execute_activity(
            MCP_LIST_ACTIVITY, MCPListRequest(server=server, agent=agent.name),
            result_type=MCPToolList,
            start_to_close_timeout=timedelta(seconds=LIST_TIMEOUT_S),
            schedule_to_close_timeout=schedule_to_close(
                LIST_TIMEOUT_S, LIST_ATTEMPTS, 10.0, budget.max_seconds),
            heartbeat_timeout=LIST_HEARTBEAT,
            retry_policy=retry_policy(LIST_ATTEMPTS, 1.0, 2.0, 10.0,
                                      non_retryable=["NotFoundError"]),
            summary=f"{agent.name} · tools of MCP server {server}")
    except ActivityError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == "NotFoundError":
            reason = (f"no worker of task queue {workflow.info().task_queue!r} declares MCP "
                      "servers (baton.MCPServer given to the worker, or [mcp.NAME] tables "
                      "of worker.py --catalogue)")
        else:
            reason = describe(err)
        ledger.step("error", agent.name, f"MCP server {server}: {reason}", ok=False,
                    error_type=MCPUnavailable.TYPE)
        ledger.check_budget()  # a deadline that ended the listing ends the run as such
        raise MCPUnavailable(agent.name, server, reason) from None
    ledger.mcp_tools[server] = (workflow.now(), listing)
    for problem in listing.problems:
        ledger.step("error", agent.name, f"MCP server {server}: tool left out: {problem}",
                    ok=False)
    return listing


async def run_mcp_tool(ledger: RunLedger, agent: AgentSpec, listing: MCPToolList,
                       tool: MCPToolInfo, call: ToolCall, records: ToolRecords) -> str:
    """One MCP tool call as its own activity; the text the model reads back."""
    server = listing.server
    # The run's latest list of the server: a session opened anew since the agent started
    # is where its calls now go.
    listing = ledger.mcp_tools.get(server, (workflow.now(), listing))[1]
    policy = listing.policy
    ledger.check_budget()
    request = MCPCall(server=server, tool=tool.name, agent=agent.name, call_id=call.id,
                      arguments=call.arguments, max_result_chars=policy.max_result_chars,
                      team=ledger.run.member)
    shown = ", ".join(f"{k}={shorten(json.dumps(v), 40)}" for k, v in call.arguments.items())
    if tool.approval:
        decision = await current_desk().ask(
            ledger, kind="tool", agent=agent.name, subject=tool.offered_as,
            arguments=call.arguments, why=f"calls of MCP tool {server}/{tool.name} need a "
            "person's approval on this worker", timeout_s=policy.approval_timeout_s,
            default=policy.approval_default)
        if not decision.approved:
            return (f"Rejected by a person: {decision.reason}. The tool {tool.offered_as} did "
                    "not run; do not call it again with these arguments.")
        request.approved_request = decision.request.request_id
        request.approval_timed_out = decision.timed_out
    ledger.check_budget()  # again: a person may have taken the deadline
    ledger.charge(agent.name, Usage(tool_calls=1))
    started = workflow.now()
    try:
        try:
            outcome = await _call(ledger, agent, listing, request, shown)
        except ActivityError as err:
            if listing.session_queue is None or not _session_gone(err):
                raise
            # The worker holding the run's session is gone: a new session on a live one.
            ledger.step("error", agent.name, f"MCP server {server}: the worker holding "
                        "this run's session is gone; opening a new session", ok=False)
            ledger.mcp_tools.pop(server, None)
            listing = await tool_list(ledger, agent, server)
            outcome = await _call(ledger, agent, listing, request, shown)
    except ActivityError as err:
        ledger.charge(agent.name, Usage(
            tool_seconds=(workflow.now() - started).total_seconds()))
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == "NotFoundError":
            raise ToolUnavailable(f"MCP tool {server}/{tool.name}",
                                  workflow.info().task_queue) from None
        if isinstance(cause, ApplicationError) and cause.type == "MCPToolGone":
            ledger.mcp_tools.pop(server, None)  # the next agent to start lists it again
        return await records.failure(ledger, agent, tool.offered_as, shown, describe(err),
                                     policy.on_failure)
    ledger.charge(agent.name, Usage(tool_seconds=outcome.elapsed_s))
    return await records.result(ledger, agent, tool.offered_as, shown, outcome)


async def _call(ledger: RunLedger, agent: AgentSpec, listing: MCPToolList, request: MCPCall,
                shown: str) -> ToolOutcome:
    """The call's activity, on the run's MCP queue or its session's worker's."""
    policy = listing.policy
    budget = ledger.check_budget()
    session = listing.session_queue
    outcome: ToolOutcome = await workflow.execute_activity(
        call_activity(listing.server, request.tool), request, result_type=ToolOutcome,
        task_queue=session or mcp_task_queue(workflow.info().task_queue),
        start_to_close_timeout=timedelta(seconds=policy.timeout_s),
        schedule_to_close_timeout=schedule_to_close(
            policy.timeout_s + (policy.session_wait_s if session else 0),
            policy.max_attempts, 30.0, budget.max_seconds),
        # Only a session's worker may be gone for good: the shared queue has others.
        schedule_to_start_timeout=(timedelta(seconds=policy.session_wait_s)
                                   if session else None),
        heartbeat_timeout=(timedelta(seconds=policy.heartbeat_s)
                           if policy.heartbeat_s is not None else None),
        retry_policy=retry_policy(policy.max_attempts, 1.0, 2.0, 30.0,
                                  non_retryable=["NotFoundError"]),
        summary=shorten(f"{agent.name} · {listing.server}/{request.tool}({shown})", 200))
    return outcome


def _session_gone(err: ActivityError) -> bool:
    """Whether no worker took the call from its session's queue in time."""
    cause = err.cause
    return isinstance(cause, ActivityTimeout) and cause.type == TimeoutType.SCHEDULE_TO_START


