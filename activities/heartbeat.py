"""Heartbeating while an activity awaits slow work (a model's answer, a tool's result).

When a worker dies with `kill -9`, Temporal learns of it only when a timeout fires.
With a heartbeat timeout of seconds and this loop beating a few times per timeout,
the call is retried on another worker within seconds rather than after its whole
start-to-close timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import activity

T = TypeVar("T")


async def heartbeating(work: Awaitable[T]) -> T:
    """Await `work`, heartbeating every third of the heartbeat timeout; cancel it if the
    activity is cancelled (a missed heartbeat, start-to-close, the workflow ended)."""
    task = asyncio.ensure_future(work)
    heartbeat_timeout = activity.info().heartbeat_timeout
    if heartbeat_timeout is None:
        return await task
    interval = max(heartbeat_timeout.total_seconds() / 3, 0.05)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=interval)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        task.cancel()
