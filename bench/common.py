"""Where the benchmarks run: the embedded dev server they start, or any cluster.

With BENCH_ADDRESS=host:port (`make bench BENCH_ADDRESS=...`) every benchmark
connects to that Temporal instead of starting its own dev server, so the same
figures can be taken on a real cluster (the worker still runs on this machine).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client

from baton.temporal import Settings, connect, start_dev_environment


@dataclass
class BenchEnvironment:
    client: Client
    local: Any = None  # the WorkflowEnvironment we started, if any

    def server_pid(self) -> int | None:
        """The dev server process we started (a child named `temporal`), if any."""
        if self.local is None:
            return None
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)
                if fields[0].endswith("(temporal") and int(fields[1].split()[1]) == os.getpid():
                    return int(stat.parent.name)
            except (OSError, IndexError, ValueError):
                continue
        return None

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


def process_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds a process has used (Linux /proc), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used, while it is entered, by the dev server and by this process
    (the worker, plus this process's client calls)."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.server_s: float | None = None
        self.worker_s = 0.0

    def __enter__(self) -> CpuMeter:
        self._server = process_cpu_s(self.server_pid)
        self._worker = time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.worker_s = time.process_time() - self._worker
        server = process_cpu_s(self.server_pid)
        if server is not None and self._server is not None:
            self.server_s = server - self._server
