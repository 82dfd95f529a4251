"""The HTTP front as the web tests use it (tests/test_web.py,
tests/test_console_browser.py): a clerk whose large refunds wait for a person, the
packaged teams beside it, and `serving(...)`, which runs `serve`'s app on a free
loopback port with a worker of its own."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from temporalio.client import Client

import baton
from baton.core.specs import Catalogue
from baton.define.app import collect_tools
from baton.define.catalogue import load_catalogue, parse_catalogue
from baton.runtime.temporal import Settings
from baton.web.app import ServeConfig, create_app
from tests.helpers import worker

FAST = {"max_attempts": 2, "initial_interval_s": 0.1, "backoff": 1.0, "max_interval_s": 0.1}
UI = "http://temporal-ui.test:8233"


@baton.tool
def lookup_order(order_id: str) -> str:
    """Look up an order."""
    return f"order {order_id}: delivered, 250 USD"


@baton.tool(approval=lambda order_id, amount_usd: amount_usd > 100)
def issue_refund(order_id: str, amount_usd: float) -> str:
    """Refund an order (above 100 USD a manager approves)."""
    return f"refunded {amount_usd} USD on {order_id}"


clerk = baton.Agent("clerk", "Help customers with their orders.", model="offline:standard",
                    tools=[lookup_order, issue_refund], retry=FAST)


def catalogue() -> Catalogue:
    """The packaged catalogue with the clerk and its tools added."""
    raw = load_catalogue().model_dump(mode="json")
    own = clerk.catalogue().model_dump(mode="json")
    for table in ("agents", "tools"):
        raw[table] = {**raw.get(table, {}), **own.get(table, {})}
    return parse_catalogue(raw)


@dataclass
class Served:
    url: str
    task_queue: str
    settings: Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def serving(client: Client, *, token: str | None = None,
                  latency_s: float = 0.0) -> AsyncIterator[Served]:
    """`serve`'s app on 127.0.0.1 (and a worker for its task queue) while inside."""
    task_queue = f"web-{uuid.uuid4().hex[:10]}"
    settings = Settings(task_queue=task_queue, ui_url=UI)
    app = create_app(ServeConfig(catalogue=catalogue(), settings=settings, client=client,
                                 token=token, offline_latency_s=latency_s))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on",
                                           timeout_graceful_shutdown=1))
    async with worker(client, task_queue, tools=collect_tools([__name__])):
        task = asyncio.create_task(server.serve())
        try:
            for _ in range(200):
                if server.started or task.done():
                    break
                await asyncio.sleep(0.05)
            assert server.started, "the HTTP front did not start"
            yield Served(url=f"http://127.0.0.1:{port}", task_queue=task_queue,
                         settings=settings)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 30)
