"""`BatonPlugin`: Baton's agents inside your own Temporal application.

    plugin = baton.BatonPlugin(my_tools_module, providers={...})
    client = await Client.connect("localhost:7233", plugins=[plugin])
    worker = Worker(client, task_queue="mine", workflows=[MyWorkflow])

Given to `Client.connect`, the plugin sets Baton's data converter (pydantic, and
the payload codec when `BATON_ENCRYPTION_KEY` is set); the client hands it on to
every worker built from it, which then registers Baton's model activity (with
this worker's breakers and providers), the tools and function guardrails of the
apps given (each tool served on the task queue of its name and schema, by a small
worker the plugin runs beside yours: activities/tools.py), the MCP servers of the
apps' agents and those given as `mcp=` (their tool-list activity, their calls served
on queues of their own beside yours, connections pooled and closed when the last
worker of the client stops: activities/mcp.py; docs/mcp.md), Baton's workflows (the
patterns, flows, and the child workflows an isolated agent or a team runs as), its
interceptors, and lets the sandbox pass Baton's modules through. Inside your
`@workflow.defn`, `await agent.run(...)`, `await team.run(...)`, `await
my_tool(...)`, `baton.gather(...)` are durable steps, as in a flow
(workflows/flow.py). The same shape as Temporal's OpenAI
Agents and pydantic-ai plugins. Both this plugin and `build_worker` (Baton's own worker,
with its tuned defaults) take their activities and worker plugins from
baton/runtime/assembly.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

from temporalio.converter import DataConverter
from temporalio.plugin import SimplePlugin
from temporalio.worker import Plugin as WorkerPlugin
from temporalio.worker import ReplayerConfig, Worker, WorkerConfig, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from baton.core.mcp import MCPServer, MCPServerConfig, declared
from baton.core.model_io import ProviderConfig
from baton.core.tools import Tool
from baton.define.api import Member
from baton.define.app import collect_guardrails, collect_mcp_servers, collect_tools
from baton.define.flows import Flow
from baton.runtime.temporal import (
    data_converter,
    worker_client,
    worker_data_converter,
    workflow_failure_types,
)
from baton.workflows.registry import ALL_WORKFLOWS

# Imported by Baton's workflow code; passed through so the sandbox does not re-import
# them for every run (they keep no per-run state at module level).
PASSED_THROUGH = ("baton", "pydantic", "pydantic_core", "annotated_types")


class BatonPlugin(SimplePlugin):
    """Baton's converter, activities, workflows and interceptors for your client and
    workers (see the module's docstring)."""

    def __init__(self, *apps: Member | Tool | Flow[Any] | ModuleType | str,
                 providers: Mapping[str, ProviderConfig] | None = None,
                 mcp: Iterable[MCPServer] | Mapping[str, MCPServerConfig] = ()) -> None:
        servers = [*collect_mcp_servers(apps), *([] if isinstance(mcp, Mapping) else mcp)]
        # Imported here, not at the top: the activities load the provider and MCP SDKs
        # (about 2 s of a process's start here), which only a process building a worker
        # needs; every command of the starter imports this module (scripts/layers.py
        # checks that no import, here or at the top, closes a circle).
        from baton.runtime.assembly import worker_parts

        # The same parts as Baton's own worker (baton/runtime/assembly.py).
        parts = worker_parts(
            tools=collect_tools(apps), guardrails=collect_guardrails(apps), providers=providers,
            mcp=declared(servers, mcp if isinstance(mcp, Mapping) else None))
        # Applied to each worker in turn: each tool served on its own queue, and the MCP
        # servers' calls on theirs, beside the worker while it runs (run_worker).
        self._parts = parts.plugins
        super().__init__(
            "baton",
            data_converter=_baton_converter,
            activities=parts.activities,
            workflows=list(ALL_WORKFLOWS),
            workflow_runner=_passing_baton_through,
            workflow_failure_exception_types=workflow_failure_types(),
            interceptors=parts.interceptors,
        )

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        """As SimplePlugin does, with the tools' and MCP servers' activities, and the
        worker decodes refusing plain payloads when encryption is required
        (baton/runtime/codec.py; the client it was given does not)."""
        config = super().configure_worker(config)
        # ToolWorkers first: Baton's workflows may name a local tool this worker lacks
        # (another app's), refused as an activity so the call goes where it is served.
        for part in self._parts:
            config = part.configure_worker(config)
        if "client" in config:
            config["client"] = worker_client(config["client"])
        return config

    async def run_worker(self, worker: Worker,
                         next: Callable[[Worker], Awaitable[None]]) -> None:
        """As SimplePlugin does, with each of the apps' tools and MCP servers served on
        queues of their own meanwhile, and the MCP connections closed when the worker
        stops (activities/tools.py, activities/mcp.py)."""
        async def rest(running: Worker) -> None:
            await SimplePlugin.run_worker(self, running, next)

        await _run_within(self._parts, worker, rest)

    def configure_replayer(self, config: ReplayerConfig) -> ReplayerConfig:
        """As SimplePlugin does, refusing plain payloads as the workers do."""
        config = super().configure_replayer(config)
        if "data_converter" in config:
            config["data_converter"] = worker_data_converter(config["data_converter"],
                                                             replaying=True)
        return config


async def _run_within(plugins: list[WorkerPlugin], worker: Worker,
                      last: Callable[[Worker], Awaitable[None]]) -> None:
    """`last(worker)` inside each plugin's run_worker, the first plugin outermost (as the
    Worker nests the plugins it is given)."""
    if not plugins:
        await last(worker)
        return
    first, rest = plugins[0], plugins[1:]

    async def inner(running: Worker) -> None:
        await _run_within(rest, running, last)

    await first.run_worker(worker, inner)


def _baton_converter(existing: DataConverter | None) -> DataConverter:
    """Baton's converter in place of the client's: its payloads are pydantic models, and
    encrypted ones need the codec (a converter of your own is replaced; say so)."""
    del existing
    return data_converter()


def _passing_baton_through(existing: WorkflowRunner | None) -> WorkflowRunner:
    runner = existing or SandboxedWorkflowRunner()
    if not isinstance(runner, SandboxedWorkflowRunner):
        return runner
    restrictions = runner.restrictions.with_passthrough_modules(*PASSED_THROUGH)
    return dataclasses.replace(runner, restrictions=restrictions)


__all__ = ["PASSED_THROUGH", "BatonPlugin"]
