"""A scripted model for tests: a function decides each answer, the offline model the rest.

Registered in place of the `offline` adapter for one test (the worker runs in the
test process), so a test can make a model that asks for an undeclared tool, sends
invalid arguments, or never stops calling tools, without a network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from baton.activities.providers import register_provider
from baton.activities.providers.offline import OfflineProvider
from baton.core.model_io import ModelRequest, ModelResponse, ProviderConfig, ToolCall, Usage

Script = Callable[[ModelRequest], ModelResponse | None]


class ScriptedProvider:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[ModelRequest] = []
        self._offline = OfflineProvider()

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        scripted = self.script(request)
        return scripted if scripted is not None else await self._offline.complete(request)


@contextmanager
def scripted_offline(script: Script) -> Iterator[ScriptedProvider]:
    """Every `offline:` call in this process goes through `script` first."""
    provider = ScriptedProvider(script)

    def factory(endpoint: ProviderConfig | None) -> ScriptedProvider:
        return provider

    register_provider("offline", factory)
    try:
        yield provider
    finally:
        register_provider("offline", OfflineProvider)


def tool_call(request: ModelRequest, name: str, **arguments: object) -> ModelResponse:
    """A model turn that asks for one tool."""
    return ModelResponse(model=request.model, finish_reason="tool_calls",
                         tool_calls=[ToolCall(id=f"call-{request.call_index}", name=name,
                                              arguments=dict(arguments))],
                         usage=Usage(calls=1, input_tokens=10, output_tokens=5))


def tool_results(request: ModelRequest) -> list[str]:
    """The tool results the model has been given so far."""
    return [m.content for m in request.messages if m.role == "tool"]
