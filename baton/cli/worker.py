"""Baton's worker process: registers every workflow, the model activity and your tools.

    python worker.py                 # task queue from BATON_TASK_QUEUE, default "baton"
    python worker.py --app MODULE    # also your @baton.tool functions, agents and teams
    python worker.py --metrics 0.0.0.0:9464   # Prometheus text at http://HOST:PORT/metrics
    python worker.py --catalogue ops.toml     # the operator's providers ([providers.NAME])
                                              # and MCP servers ([mcp.NAME])

Connection settings come from TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE (default: the
embedded dev server on localhost:7233). Provider keys are read here, from this
process's environment, and never travel through Temporal. So are named providers
(base URL, key variable, headers): from the operator's catalogue given here, never
from a run's input, which may only name them (docs/security.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Mapping, Sequence

from temporalio.runtime import Runtime

from baton.core.guardrails import Guardrail
from baton.core.mcp import MCPDefinitionError, MCPServerConfig, declared
from baton.core.model_io import ProviderConfig
from baton.core.tools import Tool
from baton.define.app import AppError, collect_mcp_servers, load_app
from baton.define.catalogue import CatalogueError, load_catalogue
from baton.define.flows import FLOWS
from baton.runtime.approver_keys import ApproverKeyError, ApproverKeys
from baton.runtime.codec import REQUIRE_ENV, EncryptionKeyError, requires_encryption
from baton.runtime.temporal import Settings, build_worker, connect, exit_now
from baton.telemetry.metrics import MetricsAddressError, known_catalogue, metrics_runtime
from baton.telemetry.search import ensure_search_attributes, patch_activation


async def serve(settings: Settings, tools: Sequence[Tool] = (),
                guardrails: Sequence[Guardrail] = (),
                providers: Mapping[str, ProviderConfig] | None = None,
                mcp: Mapping[str, MCPServerConfig] | None = None) -> None:
    client = await connect(settings)
    searchable = await ensure_search_attributes(client)
    worker = build_worker(client, settings.task_queue, tools=tools, guardrails=guardrails,
                          providers=providers, mcp=mcp or {},
                          patch_activation_callback=patch_activation(searchable))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    logging.info("worker on %s, namespace %s, task queue %s, tools: %s, flows: %s, "
                 "named providers: %s, MCP servers: %s", settings.address, settings.namespace,
                 settings.task_queue, ", ".join(t.name for t in tools) or "none",
                 ", ".join(sorted(FLOWS)) or "none",
                 ", ".join(sorted(providers or {})) or "none", ", ".join(sorted(mcp or {}))
                 or "none")
    async with worker:
        await stop.wait()
        logging.info("signal received; finishing in-flight tasks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="worker.py", description=__doc__.split("\n")[0])
    parser.add_argument("--app", metavar="MODULE", action="append", default=[],
                        help="import MODULE and register its tools, agents and teams "
                             "(repeatable; from the current directory or PYTHONPATH)")
    parser.add_argument("--catalogue", metavar="FILE",
                        default=os.environ.get("BATON_CATALOGUE") or None,
                        help="the operator's catalogue (TOML): its [providers.NAME] tables are "
                             "the named endpoints this worker may call, its [mcp.NAME] tables "
                             "the MCP servers its agents may use (default: BATON_CATALOGUE)")
    parser.add_argument("--metrics", metavar="HOST:PORT",
                        help="serve Prometheus metrics, Temporal's and Baton's, at "
                             "http://HOST:PORT/metrics (e.g. 0.0.0.0:9464)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("BATON_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tools: list[Tool] = []
    guardrails: list[Guardrail] = []
    try:
        for module in args.app:
            app = load_app(module)
            tools += app.tools
            guardrails += app.guardrails
            if app.members:  # the worker's own agents and teams: metric labels by name
                known_catalogue(app.catalogue())
        operator = load_catalogue(args.catalogue) if args.catalogue else None
        providers = operator.providers if operator is not None else {}
        servers = declared(collect_mcp_servers(args.app),
                           operator.mcp if operator is not None else None)
        approvers = ApproverKeys.from_env()  # a bad key refuses here, not in a traceback
        refuse_plain = requires_encryption()  # so does a bad BATON_REQUIRE_ENCRYPTION
    except (AppError, CatalogueError, ApproverKeyError, EncryptionKeyError,
            MCPDefinitionError) as err:
        print(f"error: {err}", flush=True)
        return 2
    if args.metrics:
        try:
            # The process's default runtime, so every client this worker makes reports
            # to the one endpoint; binding it now reports a taken port before connecting.
            Runtime.set_default(metrics_runtime(args.metrics), error_if_already_set=False)
        except MetricsAddressError as err:
            print(f"error: {err}", flush=True)
            return 2
        logging.info("metrics at http://%s/metrics", args.metrics)
    if refuse_plain:
        logging.info("refusing plain-text run inputs, Updates and signals (%s)", REQUIRE_ENV)
    if approvers.keys:
        logging.info("accepting only decisions signed by: %s", ", ".join(sorted(approvers.keys)))
    try:
        asyncio.run(serve(Settings.from_env(), tools, guardrails, providers, servers))
    except RuntimeError as err:
        logging.error("worker stopped: %s", err)
        return 1
    return 0


def run() -> None:
    """Console script `baton-worker`."""
    exit_now(main())
