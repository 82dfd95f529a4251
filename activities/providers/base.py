"""The interface every provider adapter implements, and the registry that picks one.

An adapter turns a provider-neutral `ModelRequest` into one call of a wire API and
back into a `ModelResponse`. It raises `temporalio.exceptions.ApplicationError`
for failures, marking with `non_retryable` those that retrying cannot fix, so
that Temporal's retry policy (not the SDK's) decides what happens next.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

from baton.activities.providers.errors import missing_key, remember_key
from baton.errors import UnknownProvider
from baton.model_io import ModelRequest, ModelResponse, ProviderConfig
from baton.usage import Usage


class ModelProvider(Protocol):
    async def complete(self, request: ModelRequest) -> ModelResponse: ...


# Builds an adapter for an endpoint (None: the provider's standard endpoint).
ProviderFactory = Callable[[ProviderConfig | None], ModelProvider]

_factories: dict[str, ProviderFactory] = {}
# One adapter per endpoint per worker process: real SDK clients hold connection pools.
_instances: dict[tuple[str, str | None, str | None], ModelProvider] = {}


def register_provider(kind: str, factory: ProviderFactory) -> None:
    _factories[kind] = factory
    for key in [k for k in _instances if k[0] == kind]:
        del _instances[key]


def provider_for(request: ModelRequest) -> ModelProvider:
    kind = request.kind
    endpoint = request.endpoint
    key = (kind, str(endpoint.base_url) if endpoint and endpoint.base_url else None,
           endpoint.api_key_env if endpoint else None)
    if key not in _instances:
        factory = _factories.get(kind)
        if factory is None:
            raise UnknownProvider(
                f"no adapter for provider {kind!r} on this worker; "
                f"available: {', '.join(sorted(_factories))}")
        _instances[key] = factory(endpoint)
    return _instances[key]


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


def priced(request: ModelRequest, usage: Usage) -> Usage:
    """`usage` with its cost from the request's price (None when the price is unknown)."""
    cost = request.price.cost(usage) if request.price is not None else None
    return usage.model_copy(update={"cost_usd": cost})
