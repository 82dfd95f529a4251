"""The worker's MCP connections and activities: list a server's tools, call one tool.

`MCPConnections` holds one worker's declared servers (baton/core/mcp.py) and its live
sessions. A stateless server has one connection per worker, opened on first use
(a stdio server's process started, an HTTP server's session made), shared by every
run's calls and closed when idle; a stateful server has one session per workflow
run, so what a call leaves on the server is there for that run's next call, and
only for it. A worker that dies takes its sessions with it: the interrupted call
is retried (its heartbeat stops) on a worker that opens a new session for the run.

Secrets stay here: `${VARIABLE}` references in a server's environment and headers
are read from this process's environment when a connection opens, never recorded,
and redacted from any error the worker reports.

Two activities: `baton_mcp_list_tools` on the run's task queue (the tool list,
recorded), and one dynamic activity that serves every call, typed
`mcp:SERVER/TOOL`, on queues of its own that `MCPPlugin` serves beside the worker:
`QUEUE:mcp` for stateless servers, and `QUEUE:mcp:WORKER` for the calls of the
stateful sessions this worker holds (the tool list tells the workflow which). A
call the worker's approval policy says needs a person is refused without a granted
approval, as for `@baton.tool` (activities/tools.py). A tool's own error
(`isError`) goes to the model as the tool's result; a broken connection is retried
by Temporal on a fresh one; a tool the server no longer lists fails the call at
once, typed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]
from mcp import Client, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from pydantic import ValidationError
from temporalio import activity
from temporalio.client import Client as TemporalClient
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.plugin import SimplePlugin
from temporalio.worker import Worker

from baton.activities.heartbeat import heartbeating
from baton.activities.providers.errors import redact, remember_key
from baton.core.errors import ApprovalMissing
from baton.core.mcp import (
    MCP_LIST_ACTIVITY,
    MCPCall,
    MCPListRequest,
    MCPServerConfig,
    MCPToolInfo,
    MCPToolList,
    mcp_task_queue,
    offered_name,
    resolve,
    split_call_activity,
)
from baton.core.tools import ToolOutcome, render_result
from baton.telemetry.metrics import known_labels, record_tool_call
from baton.telemetry.observability import mcp_tool_span

log = logging.getLogger(__name__)

# (server, session): "" for a stateless server's one connection per worker, the run
# ("workflow id/run id") for a stateful server's.
Key = tuple[str, str]


class MCPConnections:
    """One worker's MCP servers and live connections, and the activities that use them."""

    def __init__(self, servers: Mapping[str, MCPServerConfig]) -> None:
        self.servers = dict(servers)
        self._live: dict[Key, _Connection] = {}
        self._opening: dict[Key, asyncio.Task[_Connection]] = {}
        self._reaper: asyncio.Task[None] | None = None
        # Workers serving these connections: a BatonPlugin's are shared by every worker
        # built from its client, and only the last to stop closes them.
        self._serving = 0
        # Names this worker's own queue, where the calls of the sessions it holds go.
        self.worker_id = uuid.uuid4().hex[:12]

    def plugin(self) -> MCPPlugin:
        return MCPPlugin(self)

    def session_queue(self, task_queue: str) -> str:
        return f"{mcp_task_queue(task_queue)}:{self.worker_id}"

    @contextlib.asynccontextmanager
    async def serving(self, worker: Worker) -> AsyncIterator[list[Worker]]:
        """The MCP call queues of `worker`'s task queue served while inside (an
        activity-only worker each); then, once no worker serves them, every connection
        closed."""
        queues = [mcp_task_queue(worker.task_queue)]
        if any(config.stateful for config in self.servers.values()):
            queues.append(self.session_queue(worker.task_queue))
        # Without the client's plugins: applied again, they would register Baton's
        # workflows (and this plugin) on the call queues.
        config = worker.client.config(active_config=True)
        config["plugins"] = []
        client = TemporalClient(**config)
        beside = [Worker(client, task_queue=queue, activities=[self.call_tool],
                         interceptors=worker.config().get("interceptors", []),
                         max_concurrent_activities=500,
                         graceful_shutdown_timeout=timedelta(seconds=10))
                  for queue in queues]
        self._serving += 1
        try:
            async with contextlib.AsyncExitStack() as stack:
                for side in beside:
                    await stack.enter_async_context(side)
                yield beside
        finally:
            self._serving -= 1
            if self._serving == 0:
                await self.aclose()

    def open_sessions(self) -> list[Key]:
        return sorted(key for key, conn in self._live.items() if not conn.broken)

    @activity.defn(name=MCP_LIST_ACTIVITY)
    async def list_tools(self, request: MCPListRequest) -> MCPToolList:
        """The server's tools as the model will be offered them, with its call policy
        (and, for a stateful server, where the run's session takes its calls)."""
        config = self._config(request.server)
        listing = await heartbeating(self._list(request.server, config))
        known_labels(tools=[t.offered_as for t in listing.tools])
        if config.stateful:
            listing.session_queue = self.session_queue(activity.info().task_queue)
        return listing

    @activity.defn(dynamic=True)
    async def call_tool(self, args: Sequence[RawValue]) -> ToolOutcome:
        """One call of an MCP tool; the activity's type names the server and the tool."""
        info = activity.info()
        target = split_call_activity(info.activity_type)
        if target is None:
            # Only MCP calls are sent to these queues: anything else is refused as
            # Temporal refuses an activity no worker registered.
            raise ApplicationError(f"Activity function {info.activity_type} is not registered "
                                   "on this worker", type="NotFoundError", non_retryable=True)
        server, tool = target
        call = activity.payload_converter().from_payload(args[0].payload, MCPCall)
        if (call.server, call.tool) != target:
            raise ApplicationError(f"MCP call of {call.server}/{call.tool} scheduled as "
                                   f"{info.activity_type}", type="InvalidMCPCall",
                                   non_retryable=True)
        config = self._config(server)
        unapproved = call.approved_request is None or (
            call.approval_timed_out and config.approval_default != "approve")
        if unapproved and config.needs_approval(tool):
            # The workflow asks a person when the recorded list says so; the policy that
            # counts is this worker's declaration.
            raise ApprovalMissing(f"{server}/{tool}")
        label = offered_name(server, tool) or server
        outcome = "error"
        try:
            with mcp_tool_span(server, tool, call.agent, call.call_id, call.arguments) as span:
                result = await heartbeating(self._call(server, config, tool, call))
                span.outcome(result)
            # The tool answered with an error (isError): the attempt itself succeeded.
            outcome = "ok" if result.ok else "tool_error"
            return result
        finally:
            record_tool_call(label, call.agent, call.team, outcome)

    # --- listing and calling ---------------------------------------------------------

    async def _list(self, server: str, config: MCPServerConfig) -> MCPToolList:
        conn = await self._connection(server, config)
        tools = await conn.tools()
        return _listing(server, config, tools)

    async def _call(self, server: str, config: MCPServerConfig, tool: str,
                    call: MCPCall) -> ToolOutcome:
        conn = await self._connection(server, config)
        started = time.monotonic()
        result = await conn.call(tool, call.arguments)
        elapsed = round(time.monotonic() - started, 6)
        text = _text(result)
        if result.is_error:
            offered = [t.name for t in await conn.tools()]
            if tool not in offered:
                raise ApplicationError(
                    f"MCP server {server!r} no longer offers tool {tool!r}; it offers: "
                    f"{', '.join(offered) or 'no tools'}", type="MCPToolGone",
                    non_retryable=True)
            content, truncated = render_result(f"Error: {text}", call.max_result_chars)
            return ToolOutcome(ok=False, content=content, truncated=truncated,
                               elapsed_s=elapsed)
        content, truncated = render_result(text, call.max_result_chars)
        return ToolOutcome(content=content, truncated=truncated, elapsed_s=elapsed)

    def _config(self, server: str) -> MCPServerConfig:
        config = self.servers.get(server)
        if config is None:
            raise ApplicationError(
                f"MCP server {server!r} is not declared on this worker; its MCP servers: "
                f"{', '.join(sorted(self.servers)) or 'none'}. Servers are the worker's "
                "configuration (baton.MCPServer given to the worker, or an [mcp.NAME] table "
                "of the catalogue given to worker.py --catalogue); a run may only name them",
                type="UnknownMCPServer", non_retryable=True)
        return config

    # --- the pool ----------------------------------------------------------------------

    async def _connection(self, server: str, config: MCPServerConfig) -> _Connection:
        """The live connection for this call: the worker's for a stateless server, the
        run's for a stateful one; opened (once, however many calls wait) when missing."""
        session = ""
        if config.stateful:
            info = activity.info()
            session = f"{info.workflow_id}/{info.workflow_run_id}"
        key = (server, session)
        live = self._live.get(key)
        if live is not None and not live.broken:
            return live
        opening = self._opening.get(key)
        if opening is None:
            opening = asyncio.create_task(self._open(key, config))
            self._opening[key] = opening
            opening.add_done_callback(lambda _: self._opening.pop(key, None))
        # Shielded: one caller's cancellation must not abort the opening the others wait on.
        return await asyncio.shield(opening)

    async def _open(self, key: Key, config: MCPServerConfig) -> _Connection:
        stale = self._live.pop(key, None)
        if stale is not None:
            await stale.close()
        conn = _Connection(key[0], config)
        await conn.open()
        self._live[key] = conn
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._close_idle(), name="mcp idle connections")
        return conn

    async def _close_idle(self) -> None:
        """Close connections unused for their server's idle_s, until none is left."""
        while self._live:
            await asyncio.sleep(min(max(min(c.config.idle_s for c in self._live.values()) / 4,
                                        0.2), 30.0))
            now = time.monotonic()
            for key, conn in list(self._live.items()):
                if conn.broken or (conn.in_use == 0
                                   and now - conn.last_used > conn.config.idle_s):
                    del self._live[key]
                    await conn.close()

    async def aclose(self) -> None:
        """Close every connection (the worker is stopping)."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for task in list(self._opening.values()):
            task.cancel()
        live, self._live = list(self._live.values()), {}
        await asyncio.gather(*(conn.close() for conn in live), return_exceptions=True)


class MCPPlugin(SimplePlugin):
    """A worker's MCP servers: the listing activity on its queue, the call queues served
    beside it while it runs, every connection closed when it stops."""

    def __init__(self, connections: MCPConnections) -> None:
        super().__init__("baton.core.mcp", activities=[connections.list_tools])
        self.connections = connections

    async def run_worker(self, worker: Worker,
                         next: Callable[[Worker], Awaitable[None]]) -> None:
        async with self.connections.serving(worker):
            await next(worker)


class _Connection:
    """One MCP client session, its transport held open by a task of its own: anyio's
    cancel scopes must be entered and left in one task, while calls come from the
    tasks of many activities."""

    def __init__(self, server: str, config: MCPServerConfig) -> None:
        self.server = server
        self.config = config
        self.in_use = 0
        self.last_used = time.monotonic()
        self.broken = False
        self._client: Client | None = None
        self._stop = asyncio.Event()
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._task = asyncio.create_task(self._hold(), name=f"mcp server {self.server}")
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), self.config.connect_timeout_s)
        except TimeoutError:
            self._ready.cancel()  # what the holder says after this, nobody waits for
            await self.close()
            raise ApplicationError(
                f"MCP server {self.server!r} did not {_started(self.config)} within "
                f"{self.config.connect_timeout_s:g} s (connect_timeout_s)",
                type="MCPServerTimeout") from None
        except BaseException:
            await self.close()
            raise

    async def _hold(self) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                transport = await _transport(self.server, self.config, stack)
                client = await stack.enter_async_context(Client(
                    transport, cache=None,
                    client_info=types.Implementation(name="baton", version="1")))
                self._client = client
                self._ready.set_result(None)
                await self._stop.wait()
        except BaseException as err:
            if not self._ready.done():
                self._ready.set_exception(_start_failure(self.server, self.config, err))
            elif not self._stop.is_set():
                log.warning("MCP server %s: connection lost: %s", self.server,
                            redact(_describe(err)))
            if isinstance(err, asyncio.CancelledError):
                raise
        finally:
            self.broken = True

    async def tools(self) -> list[types.Tool]:
        """Every tool the server lists now (all pages)."""
        client = self._live_client()
        found: list[types.Tool] = []
        cursor: str | None = None
        with self._busy():
            for _ in range(100):  # a server whose pages never end cannot hang the call
                try:
                    page = await client.list_tools(cursor=cursor, cache_mode="bypass")
                except ValidationError as err:
                    raise ApplicationError(
                        f"MCP server {self.server!r} answered tools/list with something that "
                        f"is not a tool list: {_validation(err)}", type="MCPBadToolList",
                        non_retryable=True) from None
                except Exception as err:
                    raise self._failed("list its tools", err) from None
                found += page.tools
                cursor = page.next_cursor
                if cursor is None:
                    break
        return found

    async def call(self, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        client = self._live_client()
        with self._busy():
            try:
                return await client.call_tool(tool, arguments)
            except ValidationError as err:
                raise ApplicationError(
                    f"MCP server {self.server!r} answered the call of {tool!r} with something "
                    f"that is not a tool result: {_validation(err)}", type="MCPBadResult",
                    non_retryable=True) from None
            except Exception as err:
                raise self._failed(f"run {tool!r}", err) from None

    def _failed(self, what: str, err: BaseException) -> ApplicationError:
        """A retryable failure; the connection is dropped when it is the cause, so the
        retry opens a new one."""
        if self._task is None or self._task.done():
            self.broken = True
        return ApplicationError(f"MCP server {self.server!r} could not {what}: "
                                f"{redact(_describe(err))}", type="MCPServerError")

    def _live_client(self) -> Client:
        if self._client is None or self.broken:
            raise ApplicationError(f"MCP server {self.server!r}: the connection is closed",
                                   type="MCPServerError")
        return self._client

    @contextlib.contextmanager
    def _busy(self) -> Iterator[None]:
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1
            self.last_used = time.monotonic()

    async def close(self) -> None:
        """Leave the session as the protocol asks (a stdio server sees its input end and
        stops); one that never opened, or does not close in 5 s, is cancelled."""
        self._stop.set()
        task = self._task
        if task is None or task.done():
            self.broken = True
            return
        try:
            if self._client is None:
                raise TimeoutError
            await asyncio.wait_for(asyncio.shield(task), 5)
        except (TimeoutError, Exception):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if not self._ready.done():
            self._ready.cancel()


async def _transport(server: str, config: MCPServerConfig,
                     stack: contextlib.AsyncExitStack) -> Any:
    """The server's transport, its secrets resolved from this worker's environment."""
    if config.command is not None:
        env = _resolved(server, "env", config.env)
        params = StdioServerParameters(command=config.command, args=config.args, env=env,
                                       cwd=config.cwd)
        # The server's stderr is the worker's: its log is where an operator looks.
        return stdio_client(params, errlog=sys.__stderr__ or sys.stderr)
    assert config.url is not None
    http = await stack.enter_async_context(
        create_mcp_http_client(headers=_resolved(server, "headers", config.headers)))
    return streamable_http_client(config.url, http_client=http)


def _resolved(server: str, where: str, values: Mapping[str, str]) -> dict[str, str]:
    resolved: dict[str, str] = {}
    for key, value in values.items():
        try:
            resolved[key] = resolve(value, os.environ)
        except KeyError as missing:
            raise ApplicationError(
                f"MCP server {server!r}: {where}.{key} reads ${{{missing.args[0]}}}, which is "
                "not set in this worker's environment", type="MCPConfigError",
                non_retryable=True) from None
        if resolved[key] != value:
            remember_key(resolved[key])  # redacted from any error this worker reports
    return resolved


def _start_failure(server: str, config: MCPServerConfig, err: BaseException) -> BaseException:
    """What a connection that never opened says, typed: a command this worker cannot
    start is final; anything else may pass (Temporal retries the listing)."""
    if isinstance(err, ApplicationError):
        return err
    leaf = _leaf(err)
    if isinstance(leaf, OSError) and config.command is not None and leaf.errno is not None:
        return ApplicationError(
            f"MCP server {server!r}: cannot start {config.command!r} on this worker: "
            f"{leaf.strerror or leaf}", type="MCPServerUnavailable", non_retryable=True)
    return ApplicationError(f"MCP server {server!r} did not {_started(config)}: "
                            f"{redact(_describe(err))}", type="MCPServerUnavailable")


def _started(config: MCPServerConfig) -> str:
    return ("start and answer" if config.command is not None
            else "accept a connection and answer")


def _leaf(err: BaseException) -> BaseException:
    """The first exception inside anyio's exception groups."""
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    return err


def _describe(err: BaseException) -> str:
    leaf = _leaf(err)
    text = str(leaf) or type(leaf).__name__
    if isinstance(leaf, asyncio.CancelledError):
        text = "the connection closed"
    elif type(leaf).__name__ not in text:
        text = f"{type(leaf).__name__}: {text}"
    return text


def _validation(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "result"
    return f"{where}: {first['msg']} ({err.error_count()} problem(s))"


def _listing(server: str, config: MCPServerConfig, tools: Sequence[types.Tool]) -> MCPToolList:
    """The tools the model can be offered, and why any other was left out."""
    offered: list[MCPToolInfo] = []
    problems: list[str] = []
    for tool in tools:
        name = offered_name(server, tool.name)
        problem = (f"its name cannot be offered to a model (as {server}__NAME: at most 64 "
                   "letters, digits, '_' or '-')" if name is None
                   else f"another tool has the same name once offered (as {name})"
                   if any(t.offered_as == name for t in offered)
                   else _schema_problem(tool.input_schema))
        if problem is not None or name is None:
            problems.append(f"{tool.name!r}: {problem}")
            continue
        offered.append(MCPToolInfo(
            name=tool.name, offered_as=name,
            description=tool.description or f"The {tool.name} tool of MCP server {server}.",
            parameters=tool.input_schema, approval=config.needs_approval(tool.name)))
    for problem in problems:
        log.warning("MCP server %s: tool left out: %s", server, problem)
    return MCPToolList(server=server, tools=offered, problems=problems, policy=config.policy())


def _schema_problem(schema: dict[str, Any]) -> str | None:
    """Why a tool's input schema cannot be offered to a model; None when it can."""
    if schema.get("type") != "object":
        return (f"its input schema has type {schema.get('type')!r}; a tool's arguments are "
                "an object (\"type\": \"object\")")
    try:
        json.dumps(schema, allow_nan=False)
        Draft202012Validator.check_schema(schema)
    except (TypeError, ValueError) as err:
        return f"its input schema is not JSON: {err}"
    except SchemaError as err:
        where = "/".join(str(p) for p in err.path) or "its root"
        return f"its input schema is not a valid JSON schema at {where}: {err.message}"
    return None


def _text(result: types.CallToolResult) -> str:
    """A tool result as the text the model reads: its text blocks; a note for each other
    block; the structured result as JSON when there is no text."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        elif isinstance(block, types.EmbeddedResource):
            resource = block.resource
            parts.append(getattr(resource, "text", None) or f"[resource {resource.uri}]")
        elif isinstance(block, types.ResourceLink):
            parts.append(f"[resource link {block.uri}]")
        else:
            parts.append(f"[{block.type} content, {getattr(block, 'mime_type', '')} not shown]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    return "\n".join(parts)
