"""Adapter for Anthropic's Messages API.

Structured output is a tool whose input schema is the contract: forced when it is
the only tool; offered beside the agent's own tools with `tool_choice` "any" when
there are both, so every reply either asks for tools or is the answer. Tool calls
are `tool_use` blocks answered by `tool_result` blocks, always: a tool's result is
data from outside and never becomes user text, where the model would take it for
the user speaking. The API refuses tool blocks in a request that defines no tools
(the tool-turn limit reached, no contract), so such a request declares the tools its
conversation used, as stubs, with `tool_choice` "none".
The system prompt, and the conversation before the newest turn, carry
`cache_control` so repeated prefixes (a supervisor's growing conversation, a
pipeline's long inputs) are read from the prompt cache. A run that streams gets the
same request as a message stream.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
from anthropic import AsyncAnthropic

from baton.activities.providers.base import TextSink, endpoint_settings, priced
from baton.activities.providers.errors import bad_response, from_sdk, refusal
from baton.core.model_io import Message, ModelRequest, ModelResponse, ProviderConfig, ToolCall
from baton.core.usage import Usage

EPHEMERAL = {"type": "ephemeral"}
# The schema tool's description: what tells the model (and tests/fake_llm.py) that
# using this tool is giving the final answer.
SCHEMA_TOOL_DESCRIPTION = "Record your final answer in this structure."


class AnthropicMessagesProvider:
    """One client per endpoint, created on first use (so a missing key fails the call)."""

    def __init__(self, endpoint: ProviderConfig | None = None) -> None:
        self._endpoint = endpoint
        self._client: AsyncAnthropic | None = None

    def _get_client(self) -> AsyncAnthropic:
        if self._client is None:
            key, base_url = endpoint_settings(
                self._endpoint, key_variable="ANTHROPIC_API_KEY",
                base_variable="ANTHROPIC_BASE_URL", provider="Anthropic")
            # max_retries=0: Temporal's retry policy is the only retry loop.
            self._client = AsyncAnthropic(
                api_key=key, base_url=base_url, max_retries=0,
                default_headers=self._endpoint.headers if self._endpoint else None)
        return self._client

    async def complete(self, request: ModelRequest) -> ModelResponse:
        client = self._get_client()
        kwargs, schema_tool = self._call(request)
        try:
            reply = await client.messages.create(**kwargs)
        except (anthropic.APIError, ValueError) as err:
            raise from_sdk("Anthropic", err, anthropic) from None
        return self._read(request, reply, schema_tool)

    async def stream(self, request: ModelRequest, on_text: TextSink) -> ModelResponse:
        """The same call as a message stream: text deltas go to `on_text` as they come
        (a structured answer, a tool's input, arrives whole), the final message is the
        one `complete` reads."""
        client = self._get_client()
        kwargs, schema_tool = self._call(request)
        try:
            async with client.messages.stream(**kwargs) as events:
                async for text in events.text_stream:
                    on_text(text)
                reply = await events.get_final_message()
        except (anthropic.APIError, ValueError) as err:
            raise from_sdk("Anthropic", err, anthropic) from None
        if reply.stop_reason is None:
            # A connection closed mid-answer can end the body cleanly (retryable).
            raise bad_response("Anthropic", "the stream ended before the answer did")
        return self._read(request, reply, schema_tool)

    def _call(self, request: ModelRequest) -> tuple[dict[str, Any], str]:
        """The request's keyword arguments, and the name of its schema tool."""
        kwargs: dict[str, Any] = {
            "model": request.model_name,
            "max_tokens": request.max_output_tokens,
            "system": [{"type": "text", "text": request.instructions,
                        "cache_control": EPHEMERAL}],
            "timeout": request.timeout_s,
        }
        if request.temperature is not None:
            kwargs["temperature"] = min(request.temperature, 1.0)
        schema_tool = schema_tool_name(request)
        tools: list[dict[str, Any]] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in request.tools]
        if request.output_schema is not None:
            tools.append({"name": schema_tool, "input_schema": request.output_schema,
                          "description": SCHEMA_TOOL_DESCRIPTION})
            # "any": the model must use a tool, so it cannot answer in free text, yet
            # may still pick one of the agent's tools before giving the answer.
            kwargs["tool_choice"] = ({"type": "any"} if request.tools
                                     else {"type": "tool", "name": schema_tool})
        if not tools and (tools := _stubs_of_used_tools(request.messages)):
            kwargs["tool_choice"] = {"type": "none"}
        if tools:
            kwargs["tools"] = tools
        kwargs["messages"] = to_anthropic_messages(request.messages)
        return kwargs, schema_tool

    def _read(self, request: ModelRequest, reply: Any, schema_tool: str) -> ModelResponse:
        blocks = getattr(reply, "content", None)
        if blocks is None:
            raise bad_response("Anthropic", f"no content in {str(reply)[:200]!r}")
        if reply.stop_reason == "refusal":
            raise refusal("Anthropic", "the model refused to answer")
        texts = [b.text for b in blocks if b.type == "text"]
        uses = [b for b in blocks if b.type == "tool_use"]
        parsed: dict[str, Any] | None = None
        is_answer = request.output_schema is not None
        tool_calls = [ToolCall(id=b.id, name=b.name,
                               arguments=b.input if isinstance(b.input, dict) else {})
                      for b in uses if not (is_answer and b.name == schema_tool)]
        text = "".join(texts)
        # An answer given beside calls for tools was written before their results, so
        # the calls win and the model answers again once it has read them.
        if is_answer and not tool_calls:
            answer = next((b for b in uses if b.name == schema_tool), None)
            if answer is not None and isinstance(answer.input, dict):
                parsed = answer.input
                text = json.dumps(parsed)
        usage = reply.usage
        cache_read = getattr(usage, "cache_read_input_tokens", 0) or 0
        cache_write = getattr(usage, "cache_creation_input_tokens", 0) or 0
        return ModelResponse(
            model=request.model,
            text=text,
            parsed=parsed,
            tool_calls=tool_calls,
            finish_reason=reply.stop_reason or "end_turn",
            usage=priced(request, Usage(
                calls=1,
                input_tokens=usage.input_tokens + cache_read + cache_write,
                output_tokens=usage.output_tokens,
                cached_tokens=cache_read,
            )),
        )


def schema_tool_name(request: ModelRequest) -> str:
    """The output schema's tool name, kept apart from every tool the agent has."""
    name = request.output_schema_name or "output"
    taken = {t.name for t in request.tools}
    while name in taken:
        name += "_answer"
    return name


def _stubs_of_used_tools(messages: list[Message]) -> list[dict[str, Any]]:
    """Stub definitions of the tools the conversation called, for a request that offers
    none: the API refuses tool blocks unless the request defines tools."""
    used = dict.fromkeys(c.name for m in messages for c in m.tool_calls)
    return [{"name": name, "description": "Not available in this turn.",
             "input_schema": {"type": "object"}} for name in used]


def to_anthropic_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Baton's turns as alternating user/assistant messages of content blocks; tool
    results are always `tool_result` blocks, never text."""
    result: list[dict[str, Any]] = []
    for message in messages:
        role = "assistant" if message.role == "assistant" else "user"
        blocks: list[dict[str, Any]] = []
        if message.role == "tool":
            blocks.append({"type": "tool_result", "tool_use_id": message.tool_call_id,
                           "content": message.content})
        else:
            if message.content:
                blocks.append({"type": "text", "text": message.content})
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name,
                        "input": c.arguments} for c in message.tool_calls]
        if not blocks:
            blocks.append({"type": "text", "text": "(empty)"})
        if result and result[-1]["role"] == role:
            result[-1]["content"].extend(blocks)  # the API wants roles to alternate
        else:
            result.append({"role": role, "content": blocks})
    if len(result) > 1:
        # Everything before the newest turn is a stable prefix worth caching.
        result[-2]["content"][-1]["cache_control"] = EPHEMERAL
    return result
