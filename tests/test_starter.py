"""starter.py: refusals before anything starts, and real runs with true exit status."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from baton.activities.providers import register_provider
from baton.activities.providers.openai_chat import OpenAIChatProvider
from baton.core.model_io import MAX_PROMPT_BYTES
from baton.define.catalogue import load_catalogue
from tests.fake_llm import FakeLLMServer
from tests.helpers import worker
from tests.processes import ended

ROOT = Path(__file__).resolve().parent.parent
# Nothing listens here: a refusal must come before any connection attempt.
NOWHERE = "127.0.0.1:9"


def starter(*args: str, address: str = NOWHERE, stdin: str | None = None,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TEMPORAL_ADDRESS": address, **(extra_env or {})}
    return subprocess.run([sys.executable, "starter.py", *args], cwd=ROOT, env=env,
                          input=stdin, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "expected"), [
    (["triage", ""], "the conversation must end with a non-empty user message"),
    (["triage", "   \n"], "the conversation must end with a non-empty user message"),
    (["swarm", "hi"], "invalid choice: 'swarm' (choose from 'triage', 'fanout'"),
    (["run", "ghost", "hi"], "unknown team, agent or flow 'ghost'; teams: article_pipeline"),
    (["run", "ghost", "hi"], "(your own are found with --app MODULE or --app ./file.py)"),
    (["run", "invoice_pipeline", "hi"], "'invoice_pipeline' is defined in "
                                        "./examples/extraction_pipeline.py: try --app "
                                        "./examples/extraction_pipeline.py)"),
    (["run", "ghost", "hi", "--app", "./tests/data/nope.py"],
     "--app './tests/data/nope.py': no such Python file"),
    (["triage", "hi", "--model", "mystery:x"],
     "unknown model provider 'mystery'; accepted: anthropic, offline, openai"),
    (["triage", "hi", "--model", "gpt"], "must be written 'provider:model'"),
    (["triage", "hi", "--team", "nobody"], "unknown team or agent 'nobody'"),
])
def test_bad_input_is_refused_before_connecting(args: list[str], expected: str) -> None:
    result = starter(*args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert "cannot reach Temporal" not in result.stderr


def test_prompt_over_the_limit_is_refused() -> None:
    over = MAX_PROMPT_BYTES + 1
    result = starter("triage", "-", stdin="x" * over)
    assert result.returncode == 2
    assert (f"the conversation is {over} bytes; at most {MAX_PROMPT_BYTES} are accepted"
            in result.stderr)


@pytest.mark.parametrize(("content", "expected"), [
    ('[agents.a]\ninstructions = "x"\n[agents.a]\ninstructions = "y"\n',
     "is not valid TOML: Cannot declare ('agents', 'a') twice"),
    ('[agents.r]\ninstructions = "x"\nhandoffs = ["ghost"]\n',
     "agent 'r' hands off to undeclared 'ghost'"),
    ("[agents\n", "is not valid TOML"),
])
def test_bad_catalogue_is_refused(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "catalogue.toml"
    path.write_text(content)
    result = starter("triage", "hi", "--catalogue", str(path))
    assert result.returncode == 2 and expected in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_server_is_a_clear_error() -> None:
    result = starter("triage", "hi")
    assert result.returncode == 2
    assert "cannot reach Temporal at 127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


def test_catalogue_listing() -> None:
    result = starter("catalogue")
    assert result.returncode == 0
    assert "support_desk       triage" in result.stdout


async def run_starter(env: WorkflowEnvironment, task_queue: str, *args: str,
                      environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    """starter.py ARGS against the test server (`environ`: the process's environment
    instead of this one's); the process is ended whatever happens."""
    address = env.client.service_client.config.target_host
    process = await asyncio.create_subprocess_exec(
        sys.executable, "starter.py", *args, cwd=ROOT,
        env={**(os.environ if environ is None else environ), "TEMPORAL_ADDRESS": address,
             "BATON_TASK_QUEUE": task_queue},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), 120)
    finally:
        await ended(process)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_triage_run_prints_answer_usage_and_link(env: WorkflowEnvironment,
                                                       task_queue: str) -> None:
    async with worker(env.client, task_queue):
        code, out, err = await run_starter(env, task_queue, "triage",
                                           "My invoice shows the wrong amount")
    assert code == 0, err
    assert "handled by: billing" in out
    assert "usage: 2 calls" in out
    assert "web ui: http://localhost:8233/namespaces/default/workflows/triage-my-invoice-" in out


async def test_json_output_and_model_override(env: WorkflowEnvironment, task_queue: str) -> None:
    async with worker(env.client, task_queue):
        code, out, err = await run_starter(env, task_queue, "pipeline", "Durable agents",
                                           "--json", "--model", "offline:tiny")
    assert code == 0, err
    result = json.loads(out)
    assert result["pattern"] == "pipeline" and result["status"] == "ok"
    assert {s["model"] for s in result["trace"] if s["model"]} == {"offline:tiny"}
    assert result["workflow_id"].startswith("pipeline-durable-agents-")


async def test_no_wait_returns_the_id_at_once(env: WorkflowEnvironment, task_queue: str) -> None:
    # No worker: the run cannot progress, yet the starter returns with its id.
    code, out, err = await run_starter(env, task_queue, "fanout", "Rust or Go?", "--no-wait")
    assert code == 0, err
    workflow_id = out.split()[1]
    assert workflow_id.startswith("fanout-rust-or-go-")
    description = await env.client.get_workflow_handle(workflow_id).describe()
    assert description.status is not None and description.status.name == "RUNNING"
    await env.client.get_workflow_handle(workflow_id).terminate("test cleanup")


async def test_failed_run_exits_1(env: WorkflowEnvironment, task_queue: str) -> None:
    # A custom catalogue whose only agent needs a key the worker does not have.
    keyless = ROOT / "tests" / "data" / "keyless.toml"
    # The operator declares the endpoint on the worker; the client only names it.
    async with worker(env.client, task_queue, providers=load_catalogue(keyless).providers):
        code, out, err = await run_starter(env, task_queue, "run", "solo", "hello",
                                           "--catalogue", str(keyless))
    assert code == 1, err
    assert "solo: FAILED — AgentFailed: agent 'solo' failed" in out
    assert "ModelAuthError: BATON_TEST_UNSET_KEY is not set in the worker's environment" in out
    assert "web ui: http://localhost:8233/" in out


async def test_real_provider_run_prints_provider_usage(env: WorkflowEnvironment,
                                                       task_queue: str, fake: FakeLLMServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker (this process) reads the standard variables; the starter needs none.
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{fake.url}/v1")
    register_provider("openai", OpenAIChatProvider)
    try:
        async with worker(env.client, task_queue):
            code, out, err = await run_starter(env, task_queue, "triage", "Refund my invoice",
                                               "--model", "openai:gpt-5-nano")
    finally:
        register_provider("openai", OpenAIChatProvider)
    assert code == 0, err
    assert "handled by: billing" in out
    assert "usage: 2 calls, 240 in / 60 out tokens (80 cached), cost <$0.0001" in out
    assert {r.body["model"] for r in fake.requests} == {"gpt-5-nano"}


async def test_chaos_demo_completes_degraded_and_explains_why(env: WorkflowEnvironment,
                                                              task_queue: str) -> None:
    async with worker(env.client, task_queue):
        code, out, err = await run_starter(env, task_queue, "demo", "--chaos", "0.3",
                                           "--seed", "7")
        breakers_code, breakers, _ = await run_starter(env, task_queue, "breakers")
    assert code == 0, err
    statuses = [line.split("status=")[1] for line in out.splitlines() if "status=" in line]
    assert len(statuses) == 5 and set(statuses) <= {"ok", "degraded"}
    assert "down for this run: offline:standard" in out
    assert "calls refused by an open circuit" in out and "fallbacks" in out
    assert "contract repairs" in out and "retried attempts" in out
    assert "answered on fallback offline:backup" in out
    assert breakers_code == 0
    assert any(line.startswith("offline:standard") and " open " in line
               for line in breakers.splitlines())


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("--budget-calls", "0", "must be greater than 0"),
    ("--budget-usd", "-1", "must be greater than 0"),
    ("--deadline", "soon", "'soon' is not a float"),
    ("--chaos", "1.5", "a rate is between 0 and 1"),
])
def test_bad_limits_are_refused(flag: str, value: str, expected: str) -> None:
    result = starter("triage", "hi", flag, value)
    assert result.returncode == 2 and expected in result.stderr


# What a prompt (and so an offline answer, which quotes it) may carry to a terminal.
ESCAPES = "\x1b]0;pwned\x07\x1b[31m\x1b]52;c;cGF5bG9hZA==\x07\r"


async def test_a_contract_run_prints_fields_tool_calls_and_nothing_for_the_terminal(
        env: WorkflowEnvironment, task_queue: str) -> None:
    """An --app given as a file; its contract answer as fields, its tool calls listed,
    offline costs as $0, control sequences from the prompt gone; --json the same run as
    JSON with the answer an object."""
    from tests.data.tool_app import support

    prompt = f"Where is order A-1001? {ESCAPES}"
    async with worker(env.client, task_queue, tools=support.tools()):
        code, out, err = await run_starter(env, task_queue, "run", "support", prompt,
                                           "--app", "./tests/data/tool_app.py")
        json_code, json_out, json_err = await run_starter(
            env, task_queue, "run", "support", prompt, "--app", "./tests/data/tool_app.py",
            "--json")
    assert code == 0, err
    assert not any(c in out + err for c in "\x1b\x07\r"), repr(out)
    calls = out.split("\ntool calls (", 1)[1].split("\nanswer:\n", 1)[0].splitlines()[1:]
    assert calls[0].startswith("  support · lookup_order(order_id=") and calls[0].endswith(") ok")
    assert "\nanswer:\n  order_id: " in out
    assert "\n  status: " in out and "\n  answer: " in out and '\\"' not in out
    assert "cost $0\n" in out and "$0.0000" not in out
    assert json_code == 0, json_err
    shown = json.loads(json_out)
    assert isinstance(shown["answer"], dict) and set(shown["answer"]) == {
        "order_id", "status", "answer"}
    assert [(c["agent"], c["tool"], c["status"]) for c in shown["tool_calls"]] == [
        (line.split(" · ")[0].strip(), line.split(" · ")[1].split("(")[0], line.rsplit(" ")[-1])
        for line in calls]


async def test_json_of_a_failed_run_is_json(env: WorkflowEnvironment, task_queue: str) -> None:
    keyless = ROOT / "tests" / "data" / "keyless.toml"
    async with worker(env.client, task_queue, providers=load_catalogue(keyless).providers):
        code, out, err = await run_starter(env, task_queue, "run", "solo", "hello",
                                           "--catalogue", str(keyless), "--json")
    assert code == 1, err
    failed = json.loads(out)  # nothing but JSON on stdout
    assert failed["status"] == "failed" and failed["member"] == "solo"
    assert failed["error"]["type"] == "AgentFailed"
    assert "BATON_TEST_UNSET_KEY is not set" in failed["error"]["message"]
    assert failed["workflow_id"].startswith("agent-hello-") and "/workflows/" in failed["link"]
