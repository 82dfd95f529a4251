"""A local stand-in for the OpenAI and Anthropic HTTP APIs, for driving the real SDKs.

`FakeLLMServer` listens on 127.0.0.1 and speaks Chat Completions
(`POST /v1/chat/completions`) and Messages (`POST /v1/messages`). It translates
each request into a `ModelRequest`, lets the offline model answer it (so routing,
schemas and tool calls behave as in every other test), and translates the answer
back to the provider's wire format. Queued faults (an error status with headers, a
hang, a malformed body) are served first. Every request is recorded.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from baton.activities.providers.offline import OfflineProvider
from baton.model_io import Message, ModelRequest, ModelResponse, ToolCall, ToolSpec

MODEL_NAME = "model"  # the fake speaks for one "agent"; offline uses it in corrections
USAGE = {"input": 120, "output": 30, "cached": 40}


@dataclass
class Fault:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    delay_s: float = 0.0


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


class FakeLLMServer:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.faults: deque[Fault] = deque()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                body = json.loads(raw or b"{}")
                fake.requests.append(Recorded(self.path, dict(self.headers), body,
                                              time.monotonic()))
                anthropic = self.path.endswith("/messages")
                if fake.faults:
                    fault = fake.faults.popleft()
                    time.sleep(fault.delay_s)
                    if fault.status != 200 or fault.body is not None:
                        self._send(fault.status, fault.body if fault.body is not None
                                   else _error_body(fault.status, anthropic), fault.headers)
                        return
                answer = _answer(body, anthropic)
                self._send(200, json.dumps(answer), {})

            def _send(self, status: int, text: str, headers: dict[str, str]) -> None:
                data = text.encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        return Handler


def _error_body(status: int, anthropic: bool) -> str:
    if anthropic:
        return json.dumps({"type": "error", "error": {"type": "api_error",
                                                       "message": f"fake error {status}"}})
    return json.dumps({"error": {"message": f"fake error {status}", "type": "fake",
                                 "code": None}})


def _answer(body: dict[str, Any], anthropic: bool) -> dict[str, Any]:
    request = _anthropic_request(body) if anthropic else _openai_request(body)
    response = asyncio.run(OfflineProvider().complete(request))
    return _anthropic_reply(body, response) if anthropic else _openai_reply(body, response)


def _openai_request(body: dict[str, Any]) -> ModelRequest:
    instructions, messages = "", []
    for m in body["messages"]:
        if m["role"] == "system":
            instructions = m["content"]
        elif m["role"] == "tool":
            messages.append(Message(role="tool", content=m["content"],
                                    tool_call_id=m["tool_call_id"]))
        else:
            calls = [ToolCall(id=c["id"], name=c["function"]["name"],
                              arguments=json.loads(c["function"]["arguments"]))
                     for c in m.get("tool_calls") or []]
            messages.append(Message(role=m["role"], content=m.get("content") or "",
                                    tool_calls=calls, agent=MODEL_NAME))
    schema = body.get("response_format", {}).get("json_schema", {})
    tools = [ToolSpec(name=t["function"]["name"], description=t["function"]["description"],
                      parameters=t["function"]["parameters"]) for t in body.get("tools", [])]
    return ModelRequest(agent=MODEL_NAME, model=f"offline:{body['model']}",
                        instructions=instructions, messages=messages,
                        output_schema=schema.get("schema"), output_schema_name=schema.get("name"),
                        tools=tools)


def _openai_reply(body: dict[str, Any], response: ModelResponse) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": response.text or None,
                               "refusal": None}
    if response.tool_calls:
        message["tool_calls"] = [{"id": c.id, "type": "function", "function": {
            "name": c.name, "arguments": json.dumps(c.arguments)}} for c in response.tool_calls]
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
        "model": body["model"],
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "tool_calls" if response.tool_calls else "stop"}],
        "usage": {"prompt_tokens": USAGE["input"], "completion_tokens": USAGE["output"],
                  "total_tokens": USAGE["input"] + USAGE["output"],
                  "prompt_tokens_details": {"cached_tokens": USAGE["cached"]}},
    }


def _anthropic_request(body: dict[str, Any]) -> ModelRequest:
    system = body.get("system", "")
    instructions = system if isinstance(system, str) else "".join(b["text"] for b in system)
    messages: list[Message] = []
    for m in body["messages"]:
        blocks = m["content"] if isinstance(m["content"], list) else [
            {"type": "text", "text": m["content"]}]
        text = "".join(b["text"] for b in blocks if b["type"] == "text")
        for b in blocks:
            if b["type"] == "tool_result":
                messages.append(Message(role="tool", content=str(b["content"]),
                                        tool_call_id=b["tool_use_id"]))
        calls = [ToolCall(id=b["id"], name=b["name"], arguments=b["input"])
                 for b in blocks if b["type"] == "tool_use"]
        if m["role"] == "assistant":
            messages.append(Message(role="assistant", content=text, tool_calls=calls,
                                    agent=MODEL_NAME))
        elif text:
            messages.append(Message(role="user", content=text))
    forced = body.get("tool_choice", {}).get("name")
    tools = body.get("tools", [])
    schema = next((t["input_schema"] for t in tools if t["name"] == forced), None)
    specs = [] if forced else [ToolSpec(name=t["name"], description=t.get("description", ""),
                                        parameters=t["input_schema"]) for t in tools]
    return ModelRequest(agent=MODEL_NAME, model=f"offline:{body['model']}",
                        instructions=instructions, messages=messages, output_schema=schema,
                        output_schema_name=forced, tools=specs)


def _anthropic_reply(body: dict[str, Any], response: ModelResponse) -> dict[str, Any]:
    forced = body.get("tool_choice", {}).get("name")
    if forced and response.parsed is not None:
        content = [{"type": "tool_use", "id": "toolu_fake", "name": forced,
                    "input": response.parsed}]
    elif forced:  # malformed output: say it as text, as a confused model would
        content = [{"type": "text", "text": response.text}]
    else:
        content = ([{"type": "text", "text": response.text}] if response.text else []) + [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
            for c in response.tool_calls]
    return {
        "id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"],
        "content": content,
        "stop_reason": "tool_use" if response.tool_calls or forced else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": USAGE["input"] - USAGE["cached"],
                  "output_tokens": USAGE["output"],
                  "cache_read_input_tokens": USAGE["cached"],
                  "cache_creation_input_tokens": 0},
    }
