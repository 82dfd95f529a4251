"""The interface every provider adapter implements, and each worker's provider registry.

An adapter turns a provider-neutral `ModelRequest` into one call of a wire API and
back into a `ModelResponse`. It raises `temporalio.exceptions.ApplicationError`
for failures, marking with `non_retryable` those that retrying cannot fix, so
that Temporal's retry policy (not the SDK's) decides what happens next.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from baton.activities.providers.errors import missing_key, remember_key
from baton.core.errors import UnknownProvider
from baton.core.model_io import BUILTIN_PROVIDERS, ModelRequest, ModelResponse, ProviderConfig
from baton.core.usage import Price, Usage


class ModelProvider(Protocol):
    async def complete(self, request: ModelRequest) -> ModelResponse: ...


# Told each piece of the answer's text as the provider writes it.
TextSink = Callable[[str], None]


@runtime_checkable
class StreamingModelProvider(Protocol):
    """An adapter that can also hand out the text while the model writes it; the
    response is the same `complete` would return (baton/runtime/streaming.py)."""

    async def complete(self, request: ModelRequest) -> ModelResponse: ...

    async def stream(self, request: ModelRequest, on_text: TextSink) -> ModelResponse: ...


# Builds an adapter for an endpoint (None: the provider's standard endpoint).
ProviderFactory = Callable[[ProviderConfig | None], ModelProvider]

# Adapter factories by wire API ("kind"); tests swap one in for a scripted model.
_factories: dict[str, ProviderFactory] = {}


def register_provider(kind: str, factory: ProviderFactory) -> None:
    _factories[kind] = factory


class WorkerProviders:
    """The providers one worker calls: the built-in ones at their standard endpoints,
    and the named endpoints its operator declared.

    The only place a provider name becomes an endpoint, a key variable and headers.
    A run's request names its provider and nothing more, so no client can point the
    worker's keys at a URL, or make it read a variable of the client's choosing.
    """

    def __init__(self, endpoints: Mapping[str, ProviderConfig] | None = None) -> None:
        self.endpoints = dict(endpoints or {})
        # One adapter per provider and factory: real SDK clients hold connection pools,
        # and a factory swapped in by a test must not reuse the previous adapter.
        self._adapters: dict[tuple[str, ProviderFactory], ModelProvider] = {}

    def names(self) -> list[str]:
        return sorted({*BUILTIN_PROVIDERS, *self.endpoints})

    def kind_of(self, provider: str) -> str:
        """The wire API serving `provider`; UnknownProvider when this worker has none."""
        endpoint = self.endpoints.get(provider)
        if endpoint is not None:
            return endpoint.kind
        if provider in BUILTIN_PROVIDERS:
            return provider
        raise UnknownProvider(
            f"provider {provider!r} is not declared on this worker; its providers: "
            f"{', '.join(self.names())}. Providers are the worker's configuration (a "
            "[providers.NAME] table of the catalogue given to worker.py --catalogue); a "
            "run may only name them")

    def adapter_for(self, request: ModelRequest) -> ModelProvider:
        provider = request.provider
        kind = self.kind_of(provider)
        factory = _factories.get(kind)
        if factory is None:
            raise UnknownProvider(
                f"no adapter for provider kind {kind!r} on this worker; "
                f"available: {', '.join(sorted(_factories))}")
        key = (provider, factory)
        if key not in self._adapters:
            self._adapters[key] = factory(self.endpoints.get(provider))
        return self._adapters[key]


def endpoint_settings(endpoint: ProviderConfig | None, *, key_variable: str,
                      base_variable: str, provider: str) -> tuple[str, str | None]:
    """(API key, base URL) for an SDK client, from the worker's environment.

    The catalogue's endpoint may name another key variable and a base URL; a server
    declared with a base URL and no key variable is a local one that needs no key.
    """
    variable = endpoint.api_key_env if endpoint and endpoint.api_key_env else key_variable
    key = os.environ.get(variable)
    if not key:
        if endpoint is None or endpoint.base_url is None or endpoint.api_key_env is not None:
            raise missing_key(variable, provider)
        key = "unused"
    remember_key(key)
    base_url = (str(endpoint.base_url) if endpoint and endpoint.base_url
                else os.environ.get(base_variable) or None)
    return key, base_url


def priced(request: ModelRequest, usage: Usage, unknown: Price | None = None) -> Usage:
    """`usage` with its cost from the request's price, else from `unknown` (None: the
    cost is unknown)."""
    price = request.price if request.price is not None else unknown
    cost = price.cost(usage) if price is not None else None
    return usage.model_copy(update={"cost_usd": cost})
