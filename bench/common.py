"""Where the benchmarks run: the embedded dev server they start, or any cluster.

With BENCH_ADDRESS=host:port (`make bench BENCH_ADDRESS=...`) every benchmark
connects to that Temporal instead of starting its own dev server, so the same
figures can be taken on a real cluster (the worker still runs on this machine).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client

from baton.temporal import Settings, connect, start_dev_environment


@dataclass
class BenchEnvironment:
    client: Client
    local: Any = None  # the WorkflowEnvironment we started, if any

    async def shutdown(self) -> None:
        if self.local is not None:
            await self.local.shutdown()


async def bench_environment(**dev_server: Any) -> BenchEnvironment:
    address = os.environ.get("BENCH_ADDRESS")
    if address:
        settings = Settings.from_env()
        return BenchEnvironment(await connect(Settings(
            address=address, namespace=settings.namespace)))
    local = await start_dev_environment(**dev_server)
    return BenchEnvironment(local.client, local)
