"""Adapter for OpenAI and OpenAI-compatible servers, over the Chat Completions API.

Chat Completions rather than the Responses API: vLLM, Ollama, LM Studio and most
other compatible servers implement Chat Completions, so one adapter serves them
all; Baton keeps conversation state itself and needs nothing Responses adds.
Structured output uses strict JSON schema; tool calls use function tools. A run
that streams gets the same call with `stream=True` (and usage in the last chunk).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.lib.streaming.chat import ChatCompletionStreamState

from baton.activities.providers.base import TextSink, endpoint_settings, priced
from baton.activities.providers.errors import bad_response, from_sdk, refusal
from baton.core.model_io import Message, ModelRequest, ModelResponse, ProviderConfig, ToolCall
from baton.core.usage import Usage

# Keywords strict mode rejects; the workflow's pydantic validation still enforces them.
UNSUPPORTED_IN_STRICT = ("default", "minLength", "maxLength")


class OpenAIChatProvider:
    """One client per endpoint, created on first use (so a missing key fails the call)."""

    def __init__(self, endpoint: ProviderConfig | None = None) -> None:
        self._endpoint = endpoint
        self._client: AsyncOpenAI | None = None

    @property
    def _custom_server(self) -> bool:
        return self._endpoint is not None and self._endpoint.base_url is not None

    def _get_client(self) -> AsyncOpenAI:
        if self._client is None:
            key, base_url = endpoint_settings(self._endpoint, key_variable="OPENAI_API_KEY",
                                              base_variable="OPENAI_BASE_URL", provider="OpenAI")
            # max_retries=0: Temporal's retry policy is the only retry loop.
            self._client = AsyncOpenAI(
                api_key=key, base_url=base_url, max_retries=0,
                default_headers=self._endpoint.headers if self._endpoint else None)
        return self._client

    async def complete(self, request: ModelRequest) -> ModelResponse:
        client = self._get_client()
        kwargs = self._call(request)
        try:
            completion = await client.chat.completions.create(**kwargs)
        except (openai.APIError, ValueError) as err:
            raise from_sdk("OpenAI", err, openai) from None
        return self._read(request, completion)

    async def stream(self, request: ModelRequest, on_text: TextSink) -> ModelResponse:
        """The same call with `stream=True`: content deltas go to `on_text` as they come,
        the chunks add up to the completion `complete` reads (usage from the last one)."""
        client = self._get_client()
        kwargs = {**self._call(request), "stream": True,
                  "stream_options": {"include_usage": True}}
        state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
        received = False
        try:
            chunks = await client.chat.completions.create(**kwargs)
            async for chunk in chunks:
                received = True
                state.handle_chunk(chunk)
                for choice in chunk.choices:
                    if choice.index == 0 and choice.delta.content:
                        on_text(choice.delta.content)
        except (openai.APIError, ValueError) as err:
            raise from_sdk("OpenAI", err, openai) from None
        completion = state.current_completion_snapshot if received else None
        if completion is None or not completion.choices or \
                completion.choices[0].finish_reason is None:
            # A connection closed mid-answer can end the body cleanly: only the finish
            # reason tells a whole answer from a cut one (retryable, like a lost call).
            raise bad_response("OpenAI", "the stream ended before the answer did")
        return self._read(request, completion)

    def _call(self, request: ModelRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": request.model_name,
            "messages": [{"role": "system", "content": request.instructions},
                         *(to_openai_message(m) for m in request.messages)],
            "timeout": request.timeout_s,
        }
        # Compatible servers know max_tokens; OpenAI's newer models only the new name.
        limit_name = "max_tokens" if self._custom_server else "max_completion_tokens"
        kwargs[limit_name] = request.max_output_tokens
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.output_schema is not None:
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                "name": request.output_schema_name or "output",
                "schema": strict_schema(request.output_schema), "strict": True}}
        if request.tools:
            kwargs["tools"] = [{"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters}}
                for t in request.tools]
        return kwargs

    def _read(self, request: ModelRequest, completion: Any) -> ModelResponse:
        choices = getattr(completion, "choices", None)
        if not choices:
            raise bad_response("OpenAI", f"no choices in {str(completion)[:200]!r}")
        choice = choices[0]
        message = choice.message
        if getattr(message, "refusal", None):
            raise refusal("OpenAI", message.refusal)
        if choice.finish_reason == "content_filter":
            raise refusal("OpenAI", "the content filter stopped the answer", content_filter=True)
        text = message.content or ""
        tool_calls = [ToolCall(id=c.id, name=c.function.name,
                               arguments=_arguments(c.function.arguments))
                      for c in message.tool_calls or []]
        parsed = _json_object(text) if request.output_schema is not None else None
        usage = completion.usage
        details = getattr(usage, "prompt_tokens_details", None) if usage else None
        return ModelResponse(
            model=request.model,
            text=text,
            parsed=parsed,
            tool_calls=tool_calls,
            finish_reason=choice.finish_reason or "stop",
            usage=priced(request, Usage(
                calls=1,
                input_tokens=usage.prompt_tokens if usage else 0,
                output_tokens=usage.completion_tokens if usage else 0,
                cached_tokens=(getattr(details, "cached_tokens", 0) or 0) if details else 0,
            )),
        )


def to_openai_message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        return {"role": "assistant", "content": message.content or None, "tool_calls": [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for c in message.tool_calls]}
    return {"role": message.role, "content": message.content}


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema made acceptable to OpenAI's strict mode.

    Strict mode wants every property required and no extra properties; optional
    properties become nullable instead, which pydantic accepts for optional fields.
    """
    result = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for key in UNSUPPORTED_IN_STRICT:
                node.pop(key, None)
            properties = node.get("properties")
            if node.get("type") == "object" and isinstance(properties, dict):
                required = set(node.get("required", []))
                for name, prop in properties.items():
                    if name not in required and not _nullable(prop):
                        properties[name] = {"anyOf": [prop, {"type": "null"}]}
                node["required"] = list(properties)
                node["additionalProperties"] = False
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(result)
    return result


def _nullable(prop: dict[str, Any]) -> bool:
    options = prop.get("anyOf", [prop])
    return any(o.get("type") == "null" for o in options if isinstance(o, dict))


def _arguments(raw: str) -> dict[str, Any]:
    value = _json_object(raw)
    return value if value is not None else {"_unparsed": raw}


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None
    return value if isinstance(value, dict) else None
