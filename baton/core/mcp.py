"""MCP servers as durable tools: what a worker declares, what a run names, what is recorded.

An MCP server is the worker operator's configuration, like a named provider: a
command to start (stdio) or a URL to reach (Streamable HTTP), environment
variables and headers whose secret parts are `${VARIABLE}` references resolved
from the worker's own environment when it connects, and the policy of its calls
(timeout, retries, heartbeat, which tools a person approves). It is declared in
Python (`baton.MCPServer(...)`, given to an agent and so to `baton.worker`, or to
`build_worker(mcp=...)`) or in the operator's catalogue (`[mcp.NAME]` tables read
by `worker.py --catalogue`).

A run only names servers: an agent's `mcp` lists `MCPUse` entries (a server's
name and, optionally, which of its tools to offer). The worker lists a server's
tools in an activity whose result (`MCPToolList`: names, descriptions, schemas,
and the call policy from the worker's declaration; never a command, URL, header
or environment value) is recorded, so a replay offers the same tools. Each call
is then its own activity, typed `mcp:SERVER/TOOL` (activities/mcp.py), scheduled
by workflows/mcp.py.

This module is pure data (pydantic): it is imported by the agent specs and so by
the workflows; the `mcp` package itself is imported only in activities/mcp.py.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from baton.core.tools import MAX_RESULT_CHARS, OnFailure

# A server's name is part of every tool name the model sees ("SERVER__TOOL", at most
# 64 characters for OpenAI and Anthropic alike): kept short.
MCP_SERVER_NAME = r"^[A-Za-z][A-Za-z0-9-]{0,29}$"
# Between a server's name and its tool's in the name the model sees.
SEPARATOR = "__"
# The model-facing tool names providers accept.
_OFFERED = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_UNOFFERABLE = re.compile(r"[^A-Za-z0-9_-]")
# `${NAME}`: a variable of the worker's environment, read when the worker connects.
_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The activity that lists a server's tools (one per worker with MCP servers).
MCP_LIST_ACTIVITY = "baton_mcp_list_tools"
# Each call's activity type: the server's and the tool's name after this prefix. Calls
# go to a queue of their own beside the run's (MCP_QUEUE_SUFFIX), served by an
# activity-only worker of each worker that declares MCP servers; a stateful server's,
# to the queue of the one worker holding the run's session.
MCP_CALL_PREFIX = "mcp:"
MCP_QUEUE_SUFFIX = ":mcp"


class MCPDefinitionError(ValueError):
    """An MCP server declaration that cannot work; raised where it is declared."""


class MCPCallPolicy(BaseModel):
    """How the calls of one server's tools run: the worker's declaration, recorded with
    each tool list so the workflow schedules calls by it."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(default=60.0, gt=0, le=86_400)
    max_attempts: int = Field(default=3, ge=1, le=100)
    # A worker that died mid-call is noticed within this many seconds. None: no heartbeat.
    heartbeat_s: float | None = Field(default=10.0, gt=0, le=3600)
    on_failure: OnFailure = "report"
    max_result_chars: int = Field(default=MAX_RESULT_CHARS, ge=100, le=1_000_000)
    approval_timeout_s: float = Field(default=86_400.0, gt=0, le=365 * 86_400)
    approval_default: Literal["approve", "reject"] = "reject"
    # "run": the tool list is fetched once per run; a number: again when the list a
    # run holds is older than that many seconds (checked when an agent starts).
    refresh: Literal["run"] | float = "run"
    # One session per run (a server that keeps state between calls), instead of one
    # connection per worker shared by every run.
    stateful: bool = False
    # A stateful server's call waits this long for the worker holding the run's session
    # to take it; then that worker is taken for gone and the session is opened anew on
    # a live worker (what the server kept in the old one is lost).
    session_wait_s: float = Field(default=10.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _refresh_is_positive(self) -> MCPCallPolicy:
        if not isinstance(self.refresh, str) and self.refresh <= 0:
            raise ValueError(f"refresh must be \"run\" or a number of seconds above 0, "
                             f"not {self.refresh!r}")
        return self


class MCPServerConfig(MCPCallPolicy):
    """One MCP server as the worker's operator declares it (`[mcp.NAME]` in TOML)."""

    # stdio: the command the worker starts, its arguments, its environment (values may
    # be `${VARIABLE}` references to the worker's environment) and working directory.
    command: str | None = Field(default=None, min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    # Streamable HTTP: the endpoint, and headers (values may be `${VARIABLE}` references).
    url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    headers: dict[str, str] = Field(default_factory=dict)
    # Tool names or glob patterns ("delete_*", "*") whose every call a person approves.
    approval: list[str] = Field(default_factory=list)
    # Starting or reaching the server, its handshake and one tool list, at most this long.
    connect_timeout_s: float = Field(default=30.0, gt=0, le=600)
    # A connection unused this long is closed (a stdio server's process stops).
    idle_s: float = Field(default=300.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("an MCP server needs either `command` (a stdio server the worker "
                             "starts) or `url` (a Streamable HTTP endpoint), not both or none")
        if self.url is not None and (self.args or self.env or self.cwd):
            raise ValueError("`args`, `env` and `cwd` are for a stdio server (`command`); "
                             "an HTTP server takes `headers`")
        if self.command is not None and self.headers:
            raise ValueError("`headers` are for an HTTP server (`url`); a stdio server "
                             "takes `env`")
        for where, values in (("env", self.env), ("headers", self.headers)):
            for key, value in values.items():
                for name in _REFERENCE.findall(value):
                    if not _VARIABLE.match(name):
                        raise ValueError(f"{where}.{key}: ${{{name}}} is not an environment "
                                         "variable's name (letters, digits and _, not "
                                         "starting with a digit)")
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command is not None else "http"

    def policy(self) -> MCPCallPolicy:
        return MCPCallPolicy.model_validate(
            self.model_dump(include=set(MCPCallPolicy.model_fields)))

    def needs_approval(self, tool: str) -> bool:
        """Whether a person must approve every call of `tool` (the worker's policy)."""
        return any(fnmatch.fnmatchcase(tool, pattern) for pattern in self.approval)

    def variables(self) -> set[str]:
        """The worker's environment variables this server's env and headers read."""
        return {name for value in [*self.env.values(), *self.headers.values()]
                for name in _REFERENCE.findall(value)}


def resolve(value: str, environ: Mapping[str, str]) -> str:
    """`value` with each `${VARIABLE}` replaced by the variable's value in `environ`;
    KeyError naming the first variable that is not set."""
    def substitute(match: re.Match[str]) -> str:
        return environ[match.group(1)]

    return _REFERENCE.sub(substitute, value)


class MCPUse(BaseModel):
    """An agent's use of one server: its name (what the worker declares) and, optionally,
    the tools to offer (names or glob patterns; None: every tool it lists)."""

    model_config = ConfigDict(extra="forbid")

    server: str = Field(pattern=MCP_SERVER_NAME)
    tools: list[str] | None = Field(default=None, max_length=200)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"server": data} if isinstance(data, str) else data

    def admits(self, tool: str) -> bool:
        return self.tools is None or any(fnmatch.fnmatchcase(tool, p) for p in self.tools)

    def unmatched(self, tools: Iterable[str]) -> list[str]:
        """Entries of the filter that match none of `tools`."""
        names = list(tools)
        return [p for p in self.tools or [] if not any(fnmatch.fnmatchcase(n, p) for n in names)]


class MCPServer:
    """An MCP server declared in Python: `baton.MCPServer("time", command="uvx",
    args=["mcp-server-time"])` or `baton.MCPServer("tickets", url="https://...",
    headers={"Authorization": "Bearer ${TICKETS_TOKEN}"})`.

    Give it to an agent (`mcp=[server]`, or `mcp=[server.only("search_*")]`): the
    agent is offered the server's tools, and `baton.worker(agent)` declares the server
    on its worker. A run carries only the server's name. Keywords are the fields of
    `MCPServerConfig` (a catalogue's `[mcp.NAME]` table takes the same).
    """

    def __init__(self, name: str, *, command: str | None = None, args: Iterable[str] = (),
                 env: Mapping[str, str] | None = None, cwd: str | None = None,
                 url: str | None = None, headers: Mapping[str, str] | None = None,
                 approval: Iterable[str] = (), stateful: bool = False,
                 refresh: Literal["run"] | float = "run", timeout_s: float = 60.0,
                 max_attempts: int = 3, heartbeat_s: float | None = 10.0,
                 on_failure: OnFailure = "report", max_result_chars: int = MAX_RESULT_CHARS,
                 approval_timeout_s: float = 86_400.0,
                 approval_default: Literal["approve", "reject"] = "reject",
                 connect_timeout_s: float = 30.0, idle_s: float = 300.0,
                 session_wait_s: float = 10.0) -> None:
        if not isinstance(name, str) or not re.match(MCP_SERVER_NAME, name):
            raise MCPDefinitionError(
                f"MCP server name {name!r}: use 1-30 letters, digits or '-', starting with a "
                "letter (it prefixes the tool names the model sees)")
        self.name = name
        fields = {"command": command, "args": list(args), "env": dict(env or {}), "cwd": cwd,
                  "url": url, "headers": dict(headers or {}), "approval": list(approval),
                  "stateful": stateful, "refresh": refresh, "timeout_s": timeout_s,
                  "max_attempts": max_attempts, "heartbeat_s": heartbeat_s,
                  "on_failure": on_failure, "max_result_chars": max_result_chars,
                  "approval_timeout_s": approval_timeout_s,
                  "approval_default": approval_default,
                  "connect_timeout_s": connect_timeout_s, "idle_s": idle_s,
                  "session_wait_s": session_wait_s}
        try:
            self.config = MCPServerConfig.model_validate(fields)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'server'}: "
                                 f"{e['msg'].removeprefix('Value error, ')}"
                                 for e in err.errors())
            raise MCPDefinitionError(f"MCP server {name!r}: {problems}") from None

    def only(self, *tools: str) -> MCPServerUse:
        """This server offering only these tools (names or glob patterns)."""
        if not tools or not all(isinstance(t, str) and t for t in tools):
            raise MCPDefinitionError(f"MCP server {self.name!r}: only() takes tool names or "
                                     "patterns, e.g. only('get_current_time', 'convert_*')")
        return MCPServerUse(self, list(tools))

    def use(self) -> MCPUse:
        return MCPUse(server=self.name)

    def __repr__(self) -> str:
        return f"<baton.MCPServer {self.name} ({self.config.transport})>"


class MCPServerUse:
    """A server with a filter of its tools (`server.only(...)`), for an agent's `mcp`."""

    def __init__(self, server: MCPServer, tools: list[str]) -> None:
        self.server = server
        self.tools = tools

    def use(self) -> MCPUse:
        return MCPUse(server=self.server.name, tools=self.tools)

    def __repr__(self) -> str:
        return f"<baton.MCPServer {self.server.name} only {', '.join(self.tools)}>"


def declared(servers: Iterable[MCPServer] = (),
             configs: Mapping[str, MCPServerConfig] | None = None) -> dict[str, MCPServerConfig]:
    """One table of a worker's servers by name; a name declared twice differently is
    refused (the same object, or an identical declaration, counts once)."""
    table: dict[str, MCPServerConfig] = {}
    for name, config in [*((s.name, s.config) for s in servers), *(configs or {}).items()]:
        if not re.match(MCP_SERVER_NAME, name):
            raise MCPDefinitionError(f"MCP server name {name!r}: use 1-30 letters, digits or "
                                     "'-', starting with a letter")
        if table.setdefault(name, config) != config:
            raise MCPDefinitionError(f"two different MCP servers are named {name!r}; give one "
                                     "another name")
    return table


def offered_name(server: str, tool: str) -> str | None:
    """The name the model sees for `tool` of `server`; None when it cannot fit."""
    name = f"{server}{SEPARATOR}{_UNOFFERABLE.sub('_', tool)}"
    return name if _OFFERED.match(name) else None


def call_activity(server: str, tool: str) -> str:
    """The activity type of a call of `tool` on `server` (what Temporal's UI shows)."""
    return f"{MCP_CALL_PREFIX}{server}/{tool}"


def mcp_task_queue(task_queue: str) -> str:
    """The queue MCP calls of runs on `task_queue` go to (stateless servers')."""
    return f"{task_queue}{MCP_QUEUE_SUFFIX}"


def split_call_activity(activity_type: str) -> tuple[str, str] | None:
    """(server, tool) of an MCP call's activity type; None for any other type."""
    if not activity_type.startswith(MCP_CALL_PREFIX):
        return None
    server, slash, tool = activity_type.removeprefix(MCP_CALL_PREFIX).partition("/")
    return (server, tool) if slash and server and tool else None


# --- what crosses the activity boundary (and so is recorded) ---------------------------

class MCPToolInfo(BaseModel):
    """One tool a server listed, as the model is offered it."""

    name: str  # the server's name for it
    offered_as: str  # the name the model sees (SERVER__TOOL)
    description: str
    parameters: dict[str, Any]
    # The worker's policy: a person approves every call of this tool.
    approval: bool = False


class MCPToolList(BaseModel):
    """A server's tools as one worker listed them, with the server's call policy. Nothing
    here comes from the server's declaration but its name and policy."""

    server: str
    tools: list[MCPToolInfo]
    # Tools left out, each with why (a schema that is no JSON schema, a name too long).
    problems: list[str] = Field(default_factory=list)
    policy: MCPCallPolicy = Field(default_factory=MCPCallPolicy)
    # A stateful server's: the task queue of the worker that opened the run's session.
    session_queue: str | None = None

    def tool(self, name: str) -> MCPToolInfo | None:
        return next((t for t in self.tools if t.name == name), None)


class MCPListRequest(BaseModel):
    """Which server's tools to list, and for whom (shown in logs)."""

    server: str
    agent: str = ""


class MCPCall(BaseModel):
    """One MCP tool call as its activity receives it (as `ToolInvocation` for a tool)."""

    server: str
    tool: str
    agent: str
    call_id: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    max_result_chars: int = MAX_RESULT_CHARS
    team: str = ""
    # The approval a person granted for this call, when the worker's policy needs one.
    approved_request: str | None = None
    approval_timed_out: bool = False


__all__ = [
    "MCP_LIST_ACTIVITY", "MCPCall", "MCPCallPolicy", "MCPDefinitionError", "MCPListRequest",
    "MCPServer", "MCPServerConfig", "MCPServerUse", "MCPToolInfo", "MCPToolList", "MCPUse",
    "call_activity", "declared", "mcp_task_queue", "offered_name",
    "resolve", "split_call_activity",
]
