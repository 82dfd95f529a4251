"""Where the benchmarks run, and the raw-Temporal worker their baselines run on.

Each benchmark starts a dev server stored as `make server` stores it (a SQLite file
with the same pragmas), so figures are what a user of the embedded default sees;
BENCH_STORE=memory keeps it in memory instead. With BENCH_ADDRESS=host:port (`make
bench BENCH_ADDRESS=...`) every benchmark connects to that Temporal instead, so the
same figures can be taken on a real cluster (the worker still runs on this machine).

Every raw baseline runs on `raw_worker`: the same runner and options as Baton's
production worker (`baton.runtime.temporal.worker_tuning`), so a ratio measures Baton's
orchestration and not a difference in worker tuning.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from baton.runtime.temporal import Settings, connect, start_dev_environment, worker_tuning

# As scripts/dev_server.sh starts `make server`: WAL and synchronous=normal.
SQLITE_PRAGMAS = ["--sqlite-pragma", "journal_mode=wal",
                  "--sqlite-pragma", "synchronous=normal"]


@dataclass
class BenchEnvironment:
    client: Client
    local: Any = None  # the WorkflowEnvironment we started, if any
    store: str = "cluster"  # "file" (as make server), "memory", or "cluster"
    _tmp: Any = field(default=None, repr=False)

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
        if self._tmp is not None:
            self._tmp.cleanup()


async def bench_environment(*, in_memory: bool | None = None,
                            database: Path | None = None) -> BenchEnvironment:
    """The server a benchmark runs against: BENCH_ADDRESS's, else a dev server of its
    own, stored in a SQLite file like `make server`'s (at `database` if given) unless
    `in_memory` (default: BENCH_STORE=memory)."""
    address = os.environ.get("BENCH_ADDRESS")
    if address:
        settings = Settings.from_env()
        return BenchEnvironment(await connect(Settings(
            address=address, namespace=settings.namespace)))
    if in_memory is None:
        in_memory = os.environ.get("BENCH_STORE", "file") == "memory"
    if in_memory:
        local = await start_dev_environment()
        return BenchEnvironment(local.client, local, store="memory")
    tmp = None
    if database is None:
        tmp = tempfile.TemporaryDirectory(prefix="baton-bench-")
        database = Path(tmp.name) / "bench.db"
    local = await start_dev_environment(dev_server_database_filename=str(database),
                                        dev_server_extra_args=SQLITE_PRAGMAS)
    return BenchEnvironment(local.client, local, store="file", _tmp=tmp)


def raw_worker(client: Client, task_queue: str, *, workflows: Sequence[type],
               activities: Sequence[Callable[..., Any]], **options: Any) -> Worker:
    """A worker for a raw-Temporal baseline, tuned exactly as Baton's worker: the same
    slots and polls, and sandboxed exactly when Baton's is (BATON_SANDBOX=1, as
    `build_worker` reads it); `options` override for a study."""
    sandboxed = os.environ.get("BATON_SANDBOX", "") == "1"
    return Worker(client, task_queue=task_queue, workflows=workflows,
                  activities=activities,
                  **{**worker_tuning(sandboxed=sandboxed), **options})


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
