"""Baton's worker process: registers every workflow and the model activity, runs until signalled.

    python worker.py            # task queue from BATON_TASK_QUEUE, default "baton"

Connection settings come from TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE (default: the
embedded dev server on localhost:7233). Provider keys are read here, from this
process's environment, and never travel through Temporal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.model import ModelCalls
from workflows.registry import ALL_WORKFLOWS

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_UI = "http://localhost:8233"


@dataclass(frozen=True)
class Settings:
    """Where Temporal is, from the environment."""

    address: str
    namespace: str
    task_queue: str
    ui_url: str

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            address=os.environ.get("TEMPORAL_ADDRESS", DEFAULT_ADDRESS),
            namespace=os.environ.get("TEMPORAL_NAMESPACE", "default"),
            task_queue=os.environ.get("BATON_TASK_QUEUE", "baton"),
            ui_url=os.environ.get("TEMPORAL_UI_URL", DEFAULT_UI).rstrip("/"),
        )

    def workflow_link(self, workflow_id: str) -> str:
        return f"{self.ui_url}/namespaces/{self.namespace}/workflows/{workflow_id}"


async def connect(settings: Settings) -> Client:
    return await Client.connect(settings.address, namespace=settings.namespace,
                                data_converter=pydantic_data_converter)


def build_worker(client: Client, task_queue: str, **options: Any) -> Worker:
    """A worker with every Baton workflow and the model activity registered."""
    options.setdefault("graceful_shutdown_timeout", timedelta(seconds=10))
    # Model calls spend their time waiting on the network, so one worker can hold
    # hundreds at once; the SDK's default of 100 would queue a large fan-out.
    options.setdefault("max_concurrent_activities", 500)
    options.setdefault("max_concurrent_workflow_tasks", 200)
    calls = ModelCalls()  # this worker's circuit breakers, shared by all its runs
    return Worker(client, task_queue=task_queue, workflows=ALL_WORKFLOWS,
                  activities=[calls.call_model, calls.breaker_states], **options)


def exit_now(status: int) -> None:
    """Flush and leave without interpreter teardown.

    A process that used a Temporal client aborts at interpreter exit about half the
    time on our machines (sdk-python issue 300, exit 134); leaving with os._exit
    keeps the true status.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


async def serve(settings: Settings) -> None:
    client = await connect(settings)
    worker = build_worker(client, settings.task_queue)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    logging.info("worker on %s, namespace %s, task queue %s",
                 settings.address, settings.namespace, settings.task_queue)
    async with worker:
        await stop.wait()
        logging.info("signal received; finishing in-flight tasks")


def main() -> int:
    logging.basicConfig(level=os.environ.get("BATON_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(Settings.from_env()))
    except RuntimeError as err:
        logging.error("worker stopped: %s", err)
        return 1
    return 0


if __name__ == "__main__":
    exit_now(main())
