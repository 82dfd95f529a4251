"""The one activity that calls a model.

`call_model` picks the adapter for the request's provider and awaits it while
heartbeating, so a worker that dies mid-call is noticed within the heartbeat
timeout rather than after the whole start-to-close timeout.
"""

from __future__ import annotations

import asyncio

from temporalio import activity

from activities.providers import provider_for
from baton.messages import ModelRequest, ModelResponse


@activity.defn
async def call_model(request: ModelRequest) -> ModelResponse:
    provider = provider_for(request)
    call = asyncio.ensure_future(provider.complete(request))
    heartbeat_timeout = activity.info().heartbeat_timeout
    if heartbeat_timeout is None:
        return await call
    interval = max(heartbeat_timeout.total_seconds() / 3, 0.05)
    try:
        while True:
            done, _ = await asyncio.wait({call}, timeout=interval)
            if done:
                return call.result()
            activity.heartbeat()
    finally:
        # Reached on cancellation (timeout, workflow cancelled): stop the provider call.
        call.cancel()
