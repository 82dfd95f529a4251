"""docker-compose.yml and Dockerfile: they cannot run here, so check their shape."""

from __future__ import annotations

import tomllib
from pathlib import Path

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
    for package in setup["packages"]:
        top = package.split(".")[0]
        assert f"COPY {top} ./{top}" in dockerfile, top
    # baton/workflows and baton/activities link to the top-level folders.
    for linked in ("workflows", "activities"):
        assert (ROOT / "baton" / linked).resolve() == ROOT / linked
        assert f"COPY {linked} ./{linked}" in dockerfile, linked
    assert "COPY worker.py starter.py ./" in dockerfile


def test_compose_server_gets_the_dev_servers_dynamic_config() -> None:
    from baton.temporal import DEV_SERVER_DYNAMIC_CONFIG

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    server = compose["services"]["temporal"]
    assert server["environment"]["DYNAMIC_CONFIG_FILE_PATH"] == "config/dynamicconfig/baton.yaml"
    assert "./deploy/dynamicconfig:/etc/temporal/config/dynamicconfig" in server["volumes"]
    config = yaml.safe_load((ROOT / "deploy" / "dynamicconfig" / "baton.yaml").read_text())
    assert {k: v[0]["value"] for k, v in config.items()} == DEV_SERVER_DYNAMIC_CONFIG
