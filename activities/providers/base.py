"""The interface every provider adapter implements, and the registry that picks one.

An adapter turns a provider-neutral `ModelRequest` into one call of a wire API and
back into a `ModelResponse`. It raises `temporalio.exceptions.ApplicationError`
for failures, marking with `non_retryable` those that retrying cannot fix, so
that Temporal's retry policy (not the SDK's) decides what happens next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from temporalio.exceptions import ApplicationError

from baton.messages import ModelRequest, ModelResponse


class ModelProvider(Protocol):
    async def complete(self, request: ModelRequest) -> ModelResponse: ...


ProviderFactory = Callable[[], ModelProvider]

_factories: dict[str, ProviderFactory] = {}
# One adapter per provider per worker process: real SDK clients hold connection pools.
_instances: dict[str, ModelProvider] = {}


def register_provider(kind: str, factory: ProviderFactory) -> None:
    _factories[kind] = factory
    _instances.pop(kind, None)


def provider_for(request: ModelRequest) -> ModelProvider:
    kind = request.provider
    if kind not in _instances:
        factory = _factories.get(kind)
        if factory is None:
            raise ApplicationError(
                f"no adapter for provider {kind!r} on this worker; "
                f"available: {', '.join(sorted(_factories))}",
                type="UnknownProvider",
                non_retryable=True,
            )
        _instances[kind] = factory()
    return _instances[kind]
