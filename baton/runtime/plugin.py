"""`BatonPlugin`: Baton's agents inside your own Temporal application.

    plugin = baton.BatonPlugin(my_tools_module, providers={...})
    client = await Client.connect("localhost:7233", plugins=[plugin])
    worker = Worker(client, task_queue="mine", workflows=[MyWorkflow])

Given to `Client.connect`, the plugin sets Baton's data converter (pydantic, and
the payload codec when `BATON_ENCRYPTION_KEY` is set); the client hands it on to
every worker built from it, which then registers Baton's model activity (with
this worker's breakers and providers), the tools and function guardrails of the
apps given (each tool served on the task queue of its name and schema, by a small
worker the plugin runs beside yours: activities/tools.py), Baton's workflows (the
patterns, flows, and the child workflows an isolated agent or a team runs as), its
interceptors, and lets the sandbox pass Baton's modules through. Inside your
`@workflow.defn`, `await agent.run(...)`, `await team.run(...)`, `await
my_tool(...)`, `baton.gather(...)` are durable steps, as in a flow
(workflows/flow.py). The same shape as Temporal's OpenAI
Agents and pydantic-ai plugins; `build_worker` stays the way Baton's own worker is
assembled, with its tuned defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from types import ModuleType
from typing import Any

from temporalio.converter import DataConverter
from temporalio.plugin import SimplePlugin
from temporalio.worker import ReplayerConfig, Worker, WorkerConfig, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from baton.core.model_io import ProviderConfig
from baton.core.tools import Tool
from baton.define.api import Member
from baton.define.flows import Flow

# Imported by Baton's workflow code; passed through so the sandbox does not re-import
# them for every run (they keep no per-run state at module level).
PASSED_THROUGH = ("baton", "pydantic", "pydantic_core", "annotated_types")


class BatonPlugin(SimplePlugin):
    """Baton's converter, activities, workflows and interceptors for your client and
    workers (see the module's docstring)."""

    def __init__(self, *apps: Member | Tool | Flow[Any] | ModuleType | str,
                 providers: Mapping[str, ProviderConfig] | None = None) -> None:
        from baton.activities.guardrails import guardrail_activities
        from baton.activities.model import ModelCalls
        from baton.activities.providers import WorkerProviders
        from baton.activities.tools import ToolWorkers, tool_activities
        from baton.define.app import collect_guardrails, collect_tools
        from baton.runtime.approver_keys import (
            ApproverKeys,
            approver_activities,
            approver_interceptor,
        )
        from baton.runtime.temporal import workflow_failure_types
        from baton.workflows.registry import ALL_WORKFLOWS

        calls = ModelCalls(providers=WorkerProviders(providers))
        # Each tool is served on its own queue, beside the worker (run_worker).
        self._tools = ToolWorkers(collect_tools(apps))
        approvers = ApproverKeys.from_env()
        activities: list[Callable[..., Any]] = [
            calls.call_model, calls.breaker_states,
            *tool_activities(self._tools.tools),
            *guardrail_activities(collect_guardrails(apps)), *approver_activities(approvers)]
        super().__init__(
            "baton",
            data_converter=_baton_converter,
            activities=activities,
            workflows=list(ALL_WORKFLOWS),
            workflow_runner=_passing_baton_through,
            workflow_failure_exception_types=workflow_failure_types(),
            interceptors=[approver_interceptor(approvers)],
        )

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        """As SimplePlugin does, and the worker decodes refusing plain payloads when
        encryption is required (baton/runtime/codec.py; the client it was given does not)."""
        from baton.activities.tools import refusing_unknown
        from baton.runtime.temporal import worker_client

        config = super().configure_worker(config)
        # Baton's workflows may name a local tool this worker lacks (another app's):
        # refused as an activity, so the call goes where it is served.
        config["activities"] = refusing_unknown(config.get("activities", ()))
        if "client" in config:
            config["client"] = worker_client(config["client"])
        return config

    async def run_worker(self, worker: Worker,
                         next: Callable[[Worker], Awaitable[None]]) -> None:
        """As SimplePlugin does, with each of the apps' tools served on the task queue
        of its name and schema meanwhile (activities/tools.py)."""
        async def rest(running: Worker) -> None:
            await SimplePlugin.run_worker(self, running, next)

        await self._tools.serve_beside(worker, rest)

    def configure_replayer(self, config: ReplayerConfig) -> ReplayerConfig:
        """As SimplePlugin does, refusing plain payloads as the workers do."""
        from baton.runtime.temporal import worker_data_converter

        config = super().configure_replayer(config)
        if "data_converter" in config:
            config["data_converter"] = worker_data_converter(config["data_converter"],
                                                             replaying=True)
        return config


def _baton_converter(existing: DataConverter | None) -> DataConverter:
    """Baton's converter in place of the client's: its payloads are pydantic models, and
    encrypted ones need the codec (a converter of your own is replaced; say so)."""
    from baton.runtime.temporal import data_converter

    del existing
    return data_converter()


def _passing_baton_through(existing: WorkflowRunner | None) -> WorkflowRunner:
    runner = existing or SandboxedWorkflowRunner()
    if not isinstance(runner, SandboxedWorkflowRunner):
        return runner
    restrictions = runner.restrictions.with_passthrough_modules(*PASSED_THROUGH)
    return dataclasses.replace(runner, restrictions=restrictions)


__all__ = ["PASSED_THROUGH", "BatonPlugin"]
