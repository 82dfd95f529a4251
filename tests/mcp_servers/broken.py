"""A hand-written stdio MCP server that misbehaves in one chosen way, for the bad-input
tests: `python -m tests.mcp_servers.broken MODE`.

Modes: `exit` (quits before answering anything), `hang` (reads requests, answers
none), `malformed` (a tools/list answer that is no tool list), `bad-schema` (one tool
whose input schema is no JSON schema, one good tool), `vanishing` (lists `vanish`
and `stay` once, then only `stay`; a call of `vanish` is an unknown tool).
JSON-RPC lines on stdin and stdout, the pre-2026 handshake (no `server/discover`),
and no import of the `mcp` package, so each start takes a few milliseconds.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

OBJECT = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


def tools_for(mode: str, listed: int) -> Any:
    if mode == "malformed":
        return {"tools": [{"name": 42, "inputSchema": "not a schema"}]}
    if mode == "bad-schema":
        return {"tools": [
            {"name": "broken_tool", "description": "Bad schema.",
             "inputSchema": {"type": "object", "properties": {"x": {"type": "nonsense"}}}},
            {"name": "good_tool", "description": "Echo a text.", "inputSchema": OBJECT}]}
    names = ["vanish", "stay"] if listed == 0 else ["stay"]
    return {"tools": [{"name": n, "description": f"The {n} tool.", "inputSchema": OBJECT}
                      for n in names]}


def answer(mode: str, method: str, params: dict[str, Any], listed: int) -> Any:
    if method == "initialize":
        return {"protocolVersion": params.get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {}}, "serverInfo": {"name": "broken", "version": "0"}}
    if method == "tools/list":
        return tools_for(mode, listed)
    if method == "tools/call":
        name = params.get("name")
        if name == "vanish":
            return {"content": [{"type": "text", "text": "Unknown tool: vanish"}],
                    "isError": True}
        text = (params.get("arguments") or {}).get("text", "")
        return {"content": [{"type": "text", "text": f"{name} says {text}"}]}
    return {}


def main(mode: str) -> None:
    if mode == "exit":
        return
    listed = 0
    for line in sys.stdin:
        message = json.loads(line)
        if "id" not in message:
            continue  # a notification
        if mode == "hang":
            time.sleep(0.01)
            continue
        method = message.get("method", "")
        if method == "server/discover":
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"], "error": {
                "code": -32601, "message": "Method not found"}}
        else:
            reply = {"jsonrpc": "2.0", "id": message["id"],
                     "result": answer(mode, method, message.get("params") or {}, listed)}
            listed += method == "tools/list"
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1])
