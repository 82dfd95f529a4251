"""docker-compose.yml and Dockerfile: they cannot run here, so check their shape."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_compose_names_server_database_ui_and_worker() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgresql", "temporal", "temporal-ui", "worker"} <= set(services)
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    assert services["temporal"]["environment"]["POSTGRES_SEEDS"] == "postgresql"
    assert services["temporal-ui"]["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
    worker = services["worker"]
    assert worker["build"] == "." and worker["command"][:2] == ["python", "worker.py"]
    assert worker["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_compose_scrapes_the_workers_metrics_into_grafana() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    command = services["worker"]["command"]
    assert command[command.index("--metrics") + 1] == "0.0.0.0:9464"
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in (
        services["prometheus"]["volumes"])
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    [job] = scrape["scrape_configs"]
    assert job["dns_sd_configs"] == [{"names": ["worker"], "type": "A", "port": 9464}]
    mounts = " ".join(services["grafana"]["volumes"])
    assert "./deploy/grafana/baton-dashboard.json:" in mounts
    for provisioned in ("datasources/prometheus.yml", "dashboards/baton.yml"):
        assert (ROOT / "deploy" / "grafana" / "provisioning" / provisioned).exists()


def test_dockerfile_copies_every_package_the_project_ships() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = setup["package-dir"]
    for package in setup["packages"]:
        folder = mapped.get(package, package.replace(".", "/"))
        assert (ROOT / folder / "__init__.py").is_file(), folder
        top = folder.split("/")[0]
        assert f"COPY {top} ./{top}" in dockerfile, top
    # baton.workflows and baton.activities are the top-level folders, mapped, not linked.
    for folder in ("workflows", "activities"):
        assert mapped[f"baton.{folder}"] == folder
        assert not (ROOT / "baton" / folder).exists()
    assert "COPY worker.py starter.py ./" in dockerfile


def test_compose_server_gets_the_dev_servers_dynamic_config() -> None:
    from baton.runtime.temporal import DEV_SERVER_DYNAMIC_CONFIG

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    server = compose["services"]["temporal"]
    assert server["environment"]["DYNAMIC_CONFIG_FILE_PATH"] == "config/dynamicconfig/baton.yaml"
    assert "./deploy/dynamicconfig:/etc/temporal/config/dynamicconfig" in server["volumes"]
    config = yaml.safe_load((ROOT / "deploy" / "dynamicconfig" / "baton.yaml").read_text())
    assert {k: v[0]["value"] for k, v in config.items()} == DEV_SERVER_DYNAMIC_CONFIG


# --- defaults that keep a local stack local (issue 16) -------------------------------

COMPOSE_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


class MissingVariable(ValueError):
    """A `${NAME:?message}` whose variable is unset, as compose refuses it."""


def interpolate(text: str, environ: dict[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?message}` (unset or empty)."""
    def value(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if environ.get(name):
            return environ[name]
        if kind == "?":
            raise MissingVariable(f"{name}: {rest}")
        return rest if kind == "-" else ""
    return COMPOSE_VARIABLE.sub(value, text)


def compose_as_run(**environ: str) -> dict[str, Any]:
    """docker-compose.yml as compose sees it with only `environ` set (parsed, then
    each string interpolated, as compose does)."""
    def resolve(node: Any) -> Any:
        if isinstance(node, str):
            return interpolate(node, environ)
        if isinstance(node, dict):
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node
    resolved: dict[str, Any] = resolve(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))
    return resolved


def published(compose: dict[str, Any]) -> dict[str, str]:
    """Each published port ("service:port") and the host address it is bound to."""
    bound = {}
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            parts = str(port).split(":")
            # "HOST:CONTAINER" (no address) publishes on every interface.
            bound[f"{name}:{parts[-2]}"] = parts[0] if len(parts) == 3 else "0.0.0.0"
    return bound


def test_compose_binds_every_published_port_to_loopback_unless_asked() -> None:
    local = published(compose_as_run(GRAFANA_ADMIN_PASSWORD="x"))
    assert {"temporal:7233", "temporal-ui:8080", "prometheus:9090", "grafana:3000",
            "jaeger:16686", "jaeger:4318"} <= set(local)
    assert set(local.values()) == {"127.0.0.1"}, local
    # The operator's opt-in reaches every port, and is the only way off loopback.
    shared = published(compose_as_run(GRAFANA_ADMIN_PASSWORD="x", BATON_BIND="0.0.0.0"))
    assert set(shared.values()) == {"0.0.0.0"} and set(shared) == set(local)
    assert "postgresql" not in {p.split(":")[0] for p in local}  # never published


def test_compose_grafana_has_no_anonymous_access_and_no_default_password() -> None:
    with pytest.raises(MissingVariable, match="GRAFANA_ADMIN_PASSWORD: set "):
        compose_as_run()  # compose refuses to start without a chosen password
    grafana = compose_as_run(GRAFANA_ADMIN_PASSWORD="chosen")["services"]["grafana"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == "chosen"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE" not in env
    provisioning = ROOT / "deploy" / "grafana"
    for path in provisioning.rglob("*"):
        if path.is_file():
            assert "anonymous" not in path.read_text().lower(), path


def test_compose_web_ui_write_actions_are_off_unless_asked() -> None:
    def ui(**environ: str) -> dict[str, Any]:
        services = compose_as_run(GRAFANA_ADMIN_PASSWORD="x", **environ)["services"]
        environment: dict[str, Any] = services["temporal-ui"]["environment"]
        return environment

    assert ui()["TEMPORAL_DISABLE_WRITE_ACTIONS"] == "true"
    assert ui(TEMPORAL_DISABLE_WRITE_ACTIONS="false")["TEMPORAL_DISABLE_WRITE_ACTIONS"] == "false"


def test_image_runs_as_a_user_that_is_not_root() -> None:
    instructions = [line.split(None, 1) for line in (ROOT / "Dockerfile").read_text().splitlines()
                    if line.strip() and not line.startswith(("#", " ", "\t"))]
    users = [i for i, (word, _) in enumerate(instructions) if word == "USER"]
    assert users, "the Dockerfile never leaves root"
    user = instructions[users[-1]][1].split(":")[0].strip()
    assert user not in {"root", "0"}
    assert re.search(rf"useradd .*--uid {user}\b", (ROOT / "Dockerfile").read_text())
    runs = [i for i, (word, _) in enumerate(instructions) if word in {"RUN", "CMD"}]
    assert instructions[runs[-1]][0] == "CMD" and users[-1] < runs[-1]  # CMD runs as it


def test_make_traces_binds_phoenix_http_and_grpc_to_loopback() -> None:
    recipe = subprocess.run(["make", "-n", "traces"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    command = " ".join(recipe.replace("\\\n", " ").split())
    assert "PHOENIX_HOST=127.0.0.1" in command and "PHOENIX_GRPC_PORT=4317" in command
    # Phoenix binds gRPC to every interface by itself; the launcher moves it.
    assert "scripts/phoenix_local.py serve" in command and "bin/phoenix serve" not in command
    chosen = subprocess.run(["make", "-n", "traces", "TRACES_HOST=0.0.0.0"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    assert "PHOENIX_HOST=0.0.0.0" in chosen


def load_phoenix_launcher() -> Any:
    spec = importlib.util.spec_from_file_location("phoenix_local",
                                                  ROOT / "scripts" / "phoenix_local.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("address", "host", "expected"), [
    ("[::]:4317", "127.0.0.1", "127.0.0.1:4317"),
    ("0.0.0.0:4317", "127.0.0.1", "127.0.0.1:4317"),
    ("[::]:4317", "::1", "[::1]:4317"),
    ("10.0.0.5:4317", "127.0.0.1", "10.0.0.5:4317"),  # a chosen address is left alone
])
def test_phoenix_launcher_moves_an_all_interfaces_address(address: str, host: str,
                                                          expected: str) -> None:
    assert load_phoenix_launcher().on_host(address, host) == expected


def test_phoenix_launcher_rebinds_grpc_servers_made_after_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # grpc is in Phoenix's virtualenv, not Baton's: a stand-in with the same calls.
    bound: list[str] = []

    class Server:
        def add_insecure_port(self, address: str) -> int:
            bound.append(address)
            return 1

        def add_secure_port(self, address: str, credentials: object) -> int:
            bound.append(address)
            return 1

    aio = types.ModuleType("grpc.aio")
    aio.server = lambda *args, **kwargs: Server()  # type: ignore[attr-defined]
    grpc = types.ModuleType("grpc")
    grpc.aio = aio  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "grpc", grpc)
    monkeypatch.setitem(sys.modules, "grpc.aio", aio)
    load_phoenix_launcher().bind_grpc_to("127.0.0.1")
    server = aio.server(options=())
    server.add_insecure_port("[::]:4317")
    server.add_secure_port("[::]:4318", object())
    assert bound == ["127.0.0.1:4317", "127.0.0.1:4318"]
