"""A local stand-in for the OpenAI and Anthropic HTTP APIs, for driving the real SDKs.

`FakeLLMServer` listens on 127.0.0.1 and speaks Chat Completions
(`POST /v1/chat/completions`) and Messages (`POST /v1/messages`). It translates
each request into a `ModelRequest`, lets the offline model answer it (so routing,
schemas and tool calls behave as in every other test), and translates the answer
back to the provider's wire format. Queued faults (an error status with headers, a
hang, a malformed body) are served first; then a request the real Messages API
would refuse (tool blocks without tools) gets its 400; then scripted replies
(`reply_next`: a chosen text, structured answer, or tool calls, several in one turn
if wanted); then the offline model. Every request is recorded.

A request with `"stream": true` gets the same answer as server-sent events, in the
provider's streaming format (OpenAI chunks ending in `[DONE]`, with usage when
`stream_options.include_usage` asks; Anthropic's message events), text in word-sized
deltas: after `first_token_s`, then one every `token_interval_s`. A fault with
`cut_after=N` sends N text deltas and closes the connection mid-answer.
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

from baton.activities.providers.anthropic_messages import SCHEMA_TOOL_DESCRIPTION
from baton.activities.providers.offline import DELTA, OfflineProvider
from baton.core.model_io import Message, ModelRequest, ModelResponse, ToolCall, ToolSpec

MODEL_NAME = "model"  # the fake speaks for one "agent"; offline uses it in corrections
USAGE = {"input": 120, "output": 30, "cached": 40}


@dataclass
class Fault:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    delay_s: float = 0.0
    # Streamed answers only: close the connection after this many text deltas.
    cut_after: int | None = None


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


def tool_calls(*calls: ToolCall) -> ModelResponse:
    """A scripted turn asking for `calls`, all in one reply (parallel calls)."""
    return ModelResponse(model=f"fake:{MODEL_NAME}", tool_calls=list(calls),
                         finish_reason="tool_calls")


def final(text: str = "", parsed: dict[str, Any] | None = None) -> ModelResponse:
    """A scripted final answer: text, or a structured answer for the request's schema."""
    return ModelResponse(model=f"fake:{MODEL_NAME}", parsed=parsed,
                         text=json.dumps(parsed) if parsed is not None else text)


class FakeLLMServer:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.faults: deque[Fault] = deque()
        self.scripted: deque[ModelResponse] = deque()
        # Pacing of streamed answers (seconds before the first text delta, between deltas).
        self.first_token_s = 0.0
        self.token_interval_s = 0.0
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

    def reply_next(self, *replies: ModelResponse) -> None:
        """Answer the next requests with `replies`, in order, before the offline model."""
        self.scripted.extend(replies)

    def _take_scripted(self) -> ModelResponse | None:
        try:
            return self.scripted.popleft()
        except IndexError:  # none left: the offline model answers
            return None

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
                cut_after = None
                if fake.faults:
                    fault = fake.faults.popleft()
                    time.sleep(fault.delay_s)
                    cut_after = fault.cut_after
                    if fault.status != 200 or fault.body is not None:
                        self._send(fault.status, fault.body if fault.body is not None
                                   else _error_body(fault.status, anthropic), fault.headers)
                        return
                if anthropic and (problem := _refused_by_anthropic(body)):
                    self._send(400, json.dumps({"type": "error", "error": {
                        "type": "invalid_request_error", "message": problem}}), {})
                    return
                answer = _answer(body, anthropic, fake._take_scripted())
                if body.get("stream"):
                    events = (_anthropic_events(answer) if anthropic
                              else _openai_chunks(answer, body))
                    self._stream(events, cut_after)
                    return
                self._send(200, json.dumps(answer), {})

            def _stream(self, events: list[tuple[str | None, str, bool]],
                        cut_after: int | None) -> None:
                """Server-sent events, paced; closed early after `cut_after` text deltas."""
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                deltas = 0
                try:
                    for name, data, is_text in events:
                        if is_text:
                            if cut_after is not None and deltas >= cut_after:
                                return  # HTTP/1.0: closing the connection ends the body
                            time.sleep(fake.token_interval_s if deltas else
                                       fake.first_token_s)
                            deltas += 1
                        line = (f"event: {name}\n" if name else "") + f"data: {data}\n\n"
                        self.wfile.write(line.encode())
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

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


def _refused_by_anthropic(body: dict[str, Any]) -> str | None:
    """Why the real Messages API would refuse this request, for the rules adapters trip on."""
    blocks = [b for m in body["messages"] if isinstance(m["content"], list)
              for b in m["content"]]
    if not body.get("tools") and any(b["type"] in ("tool_use", "tool_result") for b in blocks):
        return "Requests which include `tool_use` or `tool_result` blocks must define tools."
    return None


def _answer(body: dict[str, Any], anthropic: bool,
            scripted: ModelResponse | None) -> dict[str, Any]:
    if scripted is not None:
        response = scripted
    else:
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
    tools = body.get("tools", [])
    answer_tool = _answer_tool(body)
    schema = next((t["input_schema"] for t in tools if t["name"] == answer_tool), None)
    # tool_choice "none" or a forced tool: the model may use none of the others.
    usable = body.get("tool_choice", {}).get("type") not in ("none", "tool")
    specs = [ToolSpec(name=t["name"], description=t.get("description", ""),
                      parameters=t["input_schema"])
             for t in tools if t["name"] != answer_tool and usable]
    return ModelRequest(agent=MODEL_NAME, model=f"offline:{body['model']}",
                        instructions=instructions, messages=messages, output_schema=schema,
                        output_schema_name=answer_tool, tools=specs)


def _answer_tool(body: dict[str, Any]) -> str | None:
    """The tool that carries the structured answer: the forced one, or the one whose
    description says so when the model may choose among several."""
    choice = body.get("tool_choice", {})
    if choice.get("type") == "tool":
        return str(choice["name"])
    return next((t["name"] for t in body.get("tools", [])
                 if t.get("description") == SCHEMA_TOOL_DESCRIPTION), None)


def _anthropic_reply(body: dict[str, Any], response: ModelResponse) -> dict[str, Any]:
    answer_tool = _answer_tool(body)
    content: list[dict[str, Any]] = []
    if response.tool_calls:
        content = ([{"type": "text", "text": response.text}] if response.text else []) + [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
            for c in response.tool_calls]
    elif answer_tool and response.parsed is not None:
        content = [{"type": "tool_use", "id": "toolu_fake", "name": answer_tool,
                    "input": response.parsed}]
    elif response.text or answer_tool:  # for a schema: malformed, as a confused model says it
        content = [{"type": "text", "text": response.text}]
    return {
        "id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"],
        "content": content,
        "stop_reason": "tool_use" if response.tool_calls or answer_tool else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": USAGE["input"] - USAGE["cached"],
                  "output_tokens": USAGE["output"],
                  "cache_read_input_tokens": USAGE["cached"],
                  "cache_creation_input_tokens": 0},
    }


# One server-sent event: (event name, data, whether it carries answer text).
Sent = tuple[str | None, str, bool]


def _openai_chunks(body: dict[str, Any], request: dict[str, Any]) -> list[Sent]:
    """A chat completion as `chat.completion.chunk` events."""
    choice = body["choices"][0]
    message = choice["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> Sent:
        return (None, json.dumps({
            "id": body["id"], "object": "chat.completion.chunk", "created": body["created"],
            "model": body["model"], "choices": [{"index": 0, "delta": delta,
                                                 "logprobs": None, "finish_reason": finish}]}),
            bool(delta.get("content")))

    sent = [chunk({"role": "assistant", "content": ""})]
    sent += [chunk({"content": piece}) for piece in DELTA.findall(message["content"] or "")]
    if message.get("refusal"):
        sent.append(chunk({"refusal": message["refusal"]}))
    for index, call in enumerate(message.get("tool_calls") or []):
        sent.append(chunk({"tool_calls": [{"index": index, **call}]}))
    sent.append(chunk({}, choice["finish_reason"]))
    if request.get("stream_options", {}).get("include_usage"):
        sent.append((None, json.dumps({
            "id": body["id"], "object": "chat.completion.chunk", "created": body["created"],
            "model": body["model"], "choices": [], "usage": body["usage"]}), False))
    sent.append((None, "[DONE]", False))
    return sent


def _anthropic_events(body: dict[str, Any]) -> list[Sent]:
    """A message as the Messages API streams it."""
    usage = body["usage"]
    start = {**body, "content": [], "stop_reason": None,
             "usage": {**usage, "output_tokens": 1}}
    sent: list[Sent] = [("message_start", json.dumps({"type": "message_start",
                                                      "message": start}), False)]
    for index, block in enumerate(body["content"]):
        empty = {"type": "text", "text": ""} if block["type"] == "text" else {**block, "input": {}}
        sent.append(("content_block_start", json.dumps(
            {"type": "content_block_start", "index": index, "content_block": empty}), False))
        if block["type"] == "text":
            sent += [("content_block_delta", json.dumps({
                "type": "content_block_delta", "index": index,
                "delta": {"type": "text_delta", "text": piece}}), True)
                for piece in DELTA.findall(block["text"])]
        else:
            sent.append(("content_block_delta", json.dumps({
                "type": "content_block_delta", "index": index, "delta": {
                    "type": "input_json_delta", "partial_json": json.dumps(block["input"])}}),
                False))
        sent.append(("content_block_stop", json.dumps(
            {"type": "content_block_stop", "index": index}), False))
    sent.append(("message_delta", json.dumps({
        "type": "message_delta", "delta": {"stop_reason": body["stop_reason"],
                                           "stop_sequence": None},
        "usage": {"output_tokens": usage["output_tokens"]}}), False))
    sent.append(("message_stop", json.dumps({"type": "message_stop"}), False))
    return sent
