"""--app modules (baton/define/app.py): loading, bad modules refused, the starter running them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from baton.define.app import AppError, app_catalogue, load_app
from baton.define.catalogue import CatalogueError, load_catalogue
from tests.processes import stop
from tests.test_starter import starter
from tests.test_worker import start_worker


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def write_module(where: Path, name: str, body: str) -> str:
    (where / f"{name}.py").write_text(textwrap.dedent(body))
    return name


def test_app_collects_tools_agents_teams_and_contracts() -> None:
    app = load_app("tests.data.tool_app")
    assert sorted(t.name for t in app.tools) == ["lookup_order", "slow_report"]
    assert [m.name for m in app.members] == ["support"]
    assert [c.__name__ for c in app.contracts] == ["OrderAnswer"]
    catalogue = app.catalogue()
    assert catalogue.agents["support"].tools == ["lookup_order", "slow_report"]
    assert catalogue.agents["support"].contract == "OrderAnswer"
    assert catalogue.tools["slow_report"].heartbeat_s == 1.0


@pytest.mark.parametrize(("body", "expected"), [
    ("import baton\nx = 1\n", "defines nothing runnable: no @baton.tool function"),
    ("raise RuntimeError('boom')\n", "raised RuntimeError: boom"),
    ("import not_a_module_anywhere\n", "No module named 'not_a_module_anywhere'"),
    ("import baton\n@baton.tool\ndef f(x):\n    return x\n",
     "parameter 'x' has no type annotation"),
    ("""\
     import baton
     @baton.tool
     def lookup(x: str) -> str:
         return x
     @baton.tool(name="lookup")
     def other(y: str) -> str:
         return y
     a = baton.Agent("a", "x", tools=[lookup])
     b = baton.Agent("b", "x", tools=[other])
     """, "two different tools are named 'lookup'"),
])
def test_bad_app_modules_are_refused_with_the_reason(module_dir: Path, body: str,
                                                     expected: str) -> None:
    name = write_module(module_dir, "bad_app_" + str(abs(hash(body)) % 10**8),
                        textwrap.dedent(body))
    with pytest.raises(AppError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        app_catalogue([name])


def test_missing_module_names_what_is_accepted() -> None:
    with pytest.raises(AppError, match=r"cannot import app module .nope\.app.: no module named"):
        load_app("nope.app")


def test_catalogue_toml_uses_an_app_modules_tools(tmp_path: Path) -> None:
    path = tmp_path / "cat.toml"
    path.write_text('app = "tests.data.tool_app"\n[agents.clerk]\ninstructions = "x"\n'
                    'tools = ["lookup_order"]\ncontract = "OrderAnswer"\n')
    catalogue = load_catalogue(path)
    assert list(catalogue.tools) == ["lookup_order", "slow_report"]
    assert catalogue.closure("clerk").tools.keys() == {"lookup_order"}
    path.write_text('app = "tests.data.tool_app"\n[agents.clerk]\ninstructions = "x"\n'
                    'tools = ["lookup_ordr"]\n')
    with pytest.raises(CatalogueError, match="unknown tool 'lookup_ordr'; known tools: "
                                             "lookup_order, slow_report"):
        load_catalogue(path)


def test_starter_lists_an_apps_agents_with_their_tools() -> None:
    result = starter("catalogue", "--app", "tests.data.tool_app")
    assert result.returncode == 0, result.stderr
    assert "support" in result.stdout and "tools: lookup_order, slow_report" in result.stdout
    assert "slow_report        activity, timeout 60 s, 3 attempts" in result.stdout


@pytest.mark.parametrize(("args", "expected"), [
    (["run", "support", "hi", "--app", "no_such_app_module"],
     "cannot import app module 'no_such_app_module'"),
    (["run", "ghost", "hi", "--app", "tests.data.tool_app"],
     "unknown team, agent or flow 'ghost'; teams: ; agents: support; flows: none"),
])
def test_starter_refuses_bad_apps_before_connecting(args: list[str], expected: str) -> None:
    result = starter(*args)
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_worker_refuses_a_bad_app_with_status_2() -> None:
    import subprocess
    import sys

    from tests.test_worker import ROOT

    result = subprocess.run([sys.executable, "worker.py", "--app", "no_such_app_module"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "cannot import app module 'no_such_app_module'" in result.stdout


async def test_starter_runs_an_app_agent_on_an_app_worker(env: WorkflowEnvironment,
                                                          task_queue: str) -> None:
    import asyncio

    address = env.client.service_client.config.target_host
    process = await start_worker(address, task_queue, "--app", "tests.data.tool_app")
    try:
        result = await asyncio.to_thread(
            starter, "run", "support", "Where is order A-1001?", "--app",
            "tests.data.tool_app", "--json", address=address,
            extra_env={"BATON_TASK_QUEUE": task_queue})
    finally:
        await stop(process)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["status"] == "ok"
    assert set(outcome["output"]) == {"order_id", "status", "answer"}
    assert [s["detail"].split("(")[0] for s in outcome["trace"]
            if s["kind"] == "tool_call"] == ["lookup_order", "slow_report"]
