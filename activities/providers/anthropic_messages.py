"""Adapter for Anthropic's Messages API.

Structured output is a forced tool whose input schema is the contract; tool calls
are `tool_use` blocks answered by `tool_result` blocks. The system prompt, and the
conversation before the newest turn, carry `cache_control` so repeated prefixes
(a supervisor's growing conversation, a pipeline's long inputs) are read from the
prompt cache.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
from anthropic import AsyncAnthropic

from baton.activities.providers.base import endpoint_settings, priced
from baton.activities.providers.errors import bad_response, from_sdk, refusal
from baton.model_io import Message, ModelRequest, ModelResponse, ProviderConfig, ToolCall
from baton.usage import Usage

EPHEMERAL = {"type": "ephemeral"}


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
            self._client = AsyncAnthropic(api_key=key, base_url=base_url, max_retries=0)
        return self._client

    async def complete(self, request: ModelRequest) -> ModelResponse:
        client = self._get_client()
        kwargs: dict[str, Any] = {
            "model": request.model_name,
            "max_tokens": request.max_output_tokens,
            "system": [{"type": "text", "text": request.instructions,
                        "cache_control": EPHEMERAL}],
            "messages": to_anthropic_messages(request.messages),
            "timeout": request.timeout_s,
        }
        if request.temperature is not None:
            kwargs["temperature"] = min(request.temperature, 1.0)
        schema_tool = request.output_schema_name or "output"
        if request.output_schema is not None:
            kwargs["tools"] = [{"name": schema_tool, "input_schema": request.output_schema,
                                "description": "Record your answer in this structure."}]
            kwargs["tool_choice"] = {"type": "tool", "name": schema_tool}
        elif request.tools:
            kwargs["tools"] = [{"name": t.name, "description": t.description,
                                "input_schema": t.parameters} for t in request.tools]
        try:
            reply = await client.messages.create(**kwargs)
        except (anthropic.APIError, ValueError) as err:
            raise from_sdk("Anthropic", err, anthropic) from None
        return self._read(request, reply, schema_tool)

    def _read(self, request: ModelRequest, reply: Any, schema_tool: str) -> ModelResponse:
        blocks = getattr(reply, "content", None)
        if blocks is None:
            raise bad_response("Anthropic", f"no content in {str(reply)[:200]!r}")
        if reply.stop_reason == "refusal":
            raise refusal("Anthropic", "the model refused to answer")
        texts = [b.text for b in blocks if b.type == "text"]
        uses = [b for b in blocks if b.type == "tool_use"]
        parsed: dict[str, Any] | None = None
        tool_calls: list[ToolCall] = []
        if request.output_schema is not None:
            answer = next((b for b in uses if b.name == schema_tool), None)
            if answer is not None and isinstance(answer.input, dict):
                parsed = answer.input
            text = json.dumps(parsed) if parsed is not None else "".join(texts)
        else:
            text = "".join(texts)
            tool_calls = [ToolCall(id=b.id, name=b.name,
                                   arguments=b.input if isinstance(b.input, dict) else {})
                          for b in uses]
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


def to_anthropic_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Baton's turns as alternating user/assistant messages of content blocks."""
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
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                       for c in message.tool_calls]
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
