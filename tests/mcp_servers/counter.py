"""A small MCP server for the tests, over stdio or Streamable HTTP.

    python -m tests.mcp_servers.counter stdio
    python -m tests.mcp_servers.counter http PORT      # on 127.0.0.1, path /mcp

Every tool execution appends one JSON line to the file named by MCP_TEST_LOG (when
set; `slow_echo` when it starts and when it ends, the others when they are done), and
so does the server when it starts and stops over stdio, so a test counts executions
and processes on the server's side. Over HTTP every request must carry `Authorization: Bearer
<MCP_TEST_TOKEN>`: a client without the worker's secret header is refused (401).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server: MCPServer[Any] = MCPServer("baton-test-counter")
# What `remember` kept in this process: a stateful session's memory.
_memory: list[str] = []


def _log(tool: str, phase: str, **fields: Any) -> None:
    path = os.environ.get("MCP_TEST_LOG")
    if path:
        entry = {"tool": tool, "phase": phase, "pid": os.getpid(), "worker": os.getppid(),
                 "at": round(time.time(), 3), **fields}
        with open(path, "a") as log:  # one write of one line: whole across processes
            log.write(json.dumps(entry) + "\n")


@server.tool()
def remember(note: str) -> str:
    """Keep a note in this session's memory."""
    _memory.append(note)
    _log("remember", "done", note=note)
    return f"kept {len(_memory)} note(s)"


@server.tool()
async def slow_echo(text: str) -> str:
    """Echo a text back, after working a while (MCP_TEST_SLOW_S seconds)."""
    _log("slow_echo", "start", text=text)
    await anyio.sleep(float(os.environ.get("MCP_TEST_SLOW_S") or 0))
    _log("slow_echo", "done", text=text)
    return f"echo: {text}"


@server.tool()
def recall() -> str:
    """The notes kept in this session's memory, and which process keeps them."""
    _log("recall", "done", notes=len(_memory))
    return json.dumps({"notes": _memory, "pid": os.getpid()})


@server.tool()
def add(a: int, b: int) -> str:
    """Add two whole numbers."""
    _log("add", "done", a=a, b=b)
    return f"{a} + {b} = {a + b}"


@server.tool()
def delete_records(table: str) -> str:
    """Delete every record of a table (dangerous)."""
    _log("delete_records", "done", table=table)
    return f"deleted every record of {table}"


@server.tool()
def fail_always(reason: str) -> str:
    """A tool that always reports an error."""
    raise ToolError(f"cannot do that: {reason}")


def _guarded(app: Any, token: str) -> Any:
    """`app` refusing every HTTP request without the bearer token (pure ASGI)."""
    expected = f"Bearer {token}".encode()

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != expected:
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"missing or wrong token"})
            return
        await app(scope, receive, send)

    return guarded


def main(argv: list[str]) -> None:
    if argv[:1] == ["http"]:
        import uvicorn

        app = _guarded(server.streamable_http_app(), os.environ["MCP_TEST_TOKEN"])
        uvicorn.run(app, host="127.0.0.1", port=int(argv[1]), log_level="warning")
    else:
        _log("server", "start")
        try:
            server.run("stdio")
        finally:  # also when its input ends while a tool still works (its client died)
            _log("server", "stop")


if __name__ == "__main__":
    main(sys.argv[1:])
