"""The starter's output and flags, without a server: safe terminal text, contract answers
as fields, costs, tool calls, Web UI links that follow the dev server, each command's
own --help, --app files, `list` order and `history` decoding."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from baton.cli import starter
from baton.cli.common import UsageError, files_defining, unknown_member
from baton.cli.output import (
    answer_lines,
    clean,
    clean_output,
    decoded_answer,
    field_lines,
    usd,
)
from baton.core.runs import RunOptions, RunResult, Step, ToolCallRecord
from baton.core.usage import Usage
from baton.define.app import AppError, load_app, module_of_file
from baton.runtime.client import RunOutcome
from baton.runtime.codec import ENCODING, EncryptionCodec
from baton.runtime.listing import newest
from baton.runtime.recovery import readable
from baton.runtime.temporal import DEFAULT_UI, Settings, SettingsError, ui_url
from tests.test_starter import ROOT

# Everything a terminal acts on rather than shows, as model or prompt text may carry it.
HOSTILE = ("\x1b[31mred\x1b[0m \x1b]0;new title\x07\x1b]8;;http://evil.example\x1b\\link"
           "\x1b]8;;\x1b\\ \x1b]52;c;cGF5bG9hZA==\x07\x1bPq#0\x1b\\ \x9b2J"
           "\rover\x08\x00\x7f \u202eevil\u202c done")


def test_clean_leaves_only_what_a_terminal_shows() -> None:
    assert clean(HOSTILE) == "red link  over evil done"
    text = "naïve 🌍 text\n\ttabbed, 100% plain [brackets] (and) ]0; ~"
    assert clean(text) == text
    assert clean("windows\r\nlines") == "windows\nlines"
    assert not any(c in clean(HOSTILE + HOSTILE[::-1]) for c in "\x1b\x07\x9b\r\x00")


def test_everything_the_starter_prints_is_cleaned() -> None:
    out = io.StringIO()
    with redirect_stdout(out), clean_output():
        print(HOSTILE)
        sys.stdout.write("\x1b[2Jcleared?\n")
    assert out.getvalue() == "red link  over evil done\ncleared?\n"


@pytest.mark.parametrize(("cost", "shown"), [
    (None, "unknown"), (0.0, "$0"), (0.000032, "<$0.0001"), (0.0001, "$0.0001"),
    (0.0012, "$0.0012"), (0.00424, "$0.0042"), (0.1, "$0.10"), (0.12345, "$0.1235"),
    (0.5, "$0.50"), (1.0, "$1.00"), (12.5, "$12.50"), (1234.567, "$1,234.57"),
])
def test_costs_are_shown_with_sensible_precision(cost: float | None, shown: str) -> None:
    assert usd(cost) == shown


CONTRACT = {"order_id": "A-1002", "amount": 25.0, "approved": True, "note": None,
            "reply": "We refunded 25 USD.\nSorry for the trouble.",
            "actions": ["refund", {"kind": "email", "to": ["ada@example.com"]}],
            "meta": {"tags": [], "extra": {}}}


def test_a_contract_answer_is_shown_as_fields() -> None:
    assert answer_lines(json.dumps(CONTRACT)) == [
        "order_id: A-1002",
        "amount: 25.0",
        "approved: true",
        "note: null",
        "reply: We refunded 25 USD.",
        "  Sorry for the trouble.",
        "actions:",
        "  - refund",
        "  - kind: email",
        "    to:",
        "      - ada@example.com",
        "meta:",
        "  tags: []",
        "  extra: {}",
    ]
    assert field_lines([[1, 2], "x"]) == ["- - 1", "  - 2", "- x"]
    # Text stays text, even text that merely looks like JSON.
    assert answer_lines("Refund issued.\nAnything else?") == ["Refund issued.", "Anything else?"]
    assert answer_lines("{not json") == ["{not json"]
    assert answer_lines('"a JSON string"') == ['"a JSON string"']


def test_json_output_carries_a_contract_answer_as_json() -> None:
    assert decoded_answer(json.dumps(CONTRACT)) == CONTRACT
    assert decoded_answer(" [1, 2] ") == [1, 2]
    assert decoded_answer("plain text") == "plain text"
    assert decoded_answer("42") == "42"  # only objects and lists are contract answers
    result = RunResult(member="desk", pattern="agent", answer=json.dumps(CONTRACT),
                       output=CONTRACT, trace=[TOOL_OK])
    shown = json.loads(json.dumps(starter.result_json(result)))
    assert shown["answer"] == CONTRACT and '\\"order_id\\"' not in json.dumps(shown)
    assert shown["tool_calls"] == [ToolCallRecord.from_step(TOOL_OK).model_dump()]


TOOL_OK = Step(kind="tool_call", agent="billing",
               detail='lookup_order(order_id="A-1002") -> {"status": "delivered"}')
TOOL_FAILED = Step(kind="tool_call", agent="billing", ok=False, path="desk/billing",
                   detail='issue_refund(order_id="A-1002", amount_usd=25) failed: '
                          "RefundRefused: nothing left to refund")
TOOL_ERROR_TEXT = Step(kind="tool_call", agent="billing", ok=False,
                       detail="lookup_order(order_id=\"Z\") -> There is no order 'Z'")


def test_tool_calls_are_read_from_the_trace() -> None:
    result = RunResult(member="desk", pattern="triage", answer="done", trace=[
        Step(kind="model_call", agent="billing", detail="asked for tools: lookup_order"),
        TOOL_OK, TOOL_FAILED, TOOL_ERROR_TEXT,
        Step(kind="tool_call", agent="flow", detail="odd line"),
        Step(kind="tool_call", agent="flow", detail="notify(x=1) failed")])
    assert [c.model_dump() for c in result.tool_calls] == [
        {"agent": "billing", "tool": "lookup_order", "arguments": 'order_id="A-1002"',
         "status": "ok", "result": '{"status": "delivered"}', "path": ""},
        {"agent": "billing", "tool": "issue_refund",
         "arguments": 'order_id="A-1002", amount_usd=25', "status": "failed",
         "result": "RefundRefused: nothing left to refund", "path": "desk/billing"},
        {"agent": "billing", "tool": "lookup_order", "arguments": 'order_id="Z"',
         "status": "failed", "result": "There is no order 'Z'", "path": ""},
        {"agent": "flow", "tool": "odd line", "arguments": "", "status": "ok",
         "result": "odd line", "path": ""},
        {"agent": "flow", "tool": "notify", "arguments": "x=1", "status": "failed",
         "result": "", "path": ""}]


def test_the_run_summary_lists_tool_calls_and_fields() -> None:
    result = RunResult(member="desk", pattern="agent", answer=json.dumps(CONTRACT),
                       trace=[TOOL_OK, TOOL_FAILED],
                       usage={"billing": Usage(calls=2, cost_usd=0.0)})
    planned = starter.plan_run("run", "hi", starter.load_for_run(None, None), "billing",
                               RunOptions())
    text = starter.render(planned, result, Settings())
    assert ("tool calls (2):\n"
            '  billing · lookup_order(order_id="A-1002") ok\n'
            '  desk/billing: billing · issue_refund(order_id="A-1002", amount_usd=25) '
            "FAILED: RefundRefused: nothing left to refund\n"
            "answer:\n"
            "  order_id: A-1002\n") in text
    assert "cost $0\n" in text and "$0.000000" not in text


def test_run_outcome_exposes_what_people_reach_for() -> None:
    result = RunResult(member="desk", pattern="agent", status="degraded", answer="x",
                       reasons=["billing answered on its fallback model"], trace=[TOOL_OK])
    outcome: RunOutcome[Any] = RunOutcome(result=result, output=None, workflow_id="w",
                                          link="l")
    assert outcome.reasons == ["billing answered on its fallback model"]
    assert outcome.status == "degraded"
    assert outcome.usage == result.total_usage
    assert [c.tool for c in outcome.tool_calls] == ["lookup_order"]


# -- links that follow the server ---------------------------------------------------


def test_web_ui_links_follow_the_environment_then_the_dev_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    address = "127.0.0.1:7600"
    assert ui_url(address, {}) == DEFAULT_UI
    (tmp_path / ".temporal").mkdir()
    (tmp_path / ".temporal" / "server.env").write_text(
        f"# started by scripts/dev_server.sh\nTEMPORAL_ADDRESS={address}\n"
        "TEMPORAL_UI_URL=http://127.0.0.1:8611\n")
    assert ui_url(address, {}) == "http://127.0.0.1:8611"
    assert ui_url("localhost:7233", {}) == DEFAULT_UI  # recorded for another server
    assert ui_url(address, {"TEMPORAL_UI_PORT": "9000"}) == "http://127.0.0.1:9000"
    assert ui_url("0.0.0.0:7233", {"TEMPORAL_UI_PORT": "9000"}) == "http://localhost:9000"
    assert ui_url(address, {"TEMPORAL_UI_PORT": "9000",
                            "TEMPORAL_UI_URL": "https://ui.example/"}) == "https://ui.example"
    for bad in ("abc", "0", "70000", "-1"):
        with pytest.raises(SettingsError, match=f"TEMPORAL_UI_PORT='{bad}' is not a port"):
            ui_url(address, {"TEMPORAL_UI_PORT": bad})
    monkeypatch.setenv("TEMPORAL_ADDRESS", address)
    monkeypatch.delenv("TEMPORAL_UI_URL", raising=False)
    monkeypatch.delenv("TEMPORAL_UI_PORT", raising=False)
    assert Settings.from_env().workflow_link("w") == \
        "http://127.0.0.1:8611/namespaces/default/workflows/w"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_make_server_records_what_it_started_and_links_follow(tmp_path: Path) -> None:
    """scripts/dev_server.sh in a checkout of its own: the UI port it was given is the
    one it serves, records and prints, and the starter's links use; `stop` forgets it."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "dev_server.sh", checkout / "scripts")
    (checkout / ".venv").symlink_to(ROOT / ".venv")
    address, ui_port = f"127.0.0.1:{free_port()}", free_port()
    environ = {**os.environ, "TEMPORAL_ADDRESS": address, "TEMPORAL_UI_PORT": str(ui_port)}
    environ.pop("TEMPORAL_UI_URL", None)

    def script(command: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "scripts/dev_server.sh", command], cwd=checkout,
                              env={**environ, **extra}, capture_output=True, text=True,
                              timeout=90)

    try:
        started = script("start")
        assert started.returncode == 0, started.stderr
        ui = f"http://127.0.0.1:{ui_port}"
        assert f"Web UI {ui}" in started.stdout
        assert f"export TEMPORAL_ADDRESS={address} TEMPORAL_UI_URL={ui}" in started.stdout
        recorded = (checkout / ".temporal" / "server.env").read_text()
        assert f"TEMPORAL_ADDRESS={address}\nTEMPORAL_UI_URL={ui}\n" in recorded
        with socket.create_connection(("127.0.0.1", ui_port), timeout=5):
            pass  # the Web UI listens where the links will point
        again = script("start", TEMPORAL_UI_PORT="")
        assert f"already answers at {address} (Web UI {ui})" in again.stdout
        # Another shell, without TEMPORAL_UI_PORT: the starter's links follow the record.
        link = subprocess.run(
            [sys.executable, "-c", "from baton.runtime.temporal import Settings; "
                                   "print(Settings.from_env().workflow_link('w'))"],
            cwd=checkout, env={**environ, "TEMPORAL_UI_PORT": ""}, capture_output=True,
            text=True, timeout=60)
        assert link.stdout.strip() == f"{ui}/namespaces/default/workflows/w", link.stderr
    finally:
        stopped = script("stop")
        pid_file = checkout / ".temporal" / "server.pid"
        if pid_file.exists():  # the script could not stop it: never leave it running
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert "stopped" in stopped.stdout
    assert not (checkout / ".temporal" / "server.env").exists()


# -- each command's flags, --app files, unknown names --------------------------------


def help_of(*command: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit):
        starter.build_parser().parse_args([*command, "--help"])
    return out.getvalue()


RUN_FLAGS = ("--model", "--no-wait", "--follow", "--catalogue", "--app", "--item",
             "--budget-tokens", "--deadline", "--chaos", "--seed", "--latency")


@pytest.mark.parametrize("command", ["reject", "approve", "pending", "history", "list",
                                     "watch", "end", "breakers", "replay", "reset"])
def test_commands_that_start_no_run_list_no_run_flags(command: str) -> None:
    shown = help_of(command)
    # replay takes --app of its own: the module whose flows the history ran.
    own = {"replay": {"--app"}}.get(command, set())
    assert not [flag for flag in RUN_FLAGS
                if flag not in own and (f"{flag} " in shown or f"{flag}\n" in shown)]
    if own:
        assert "the module or file defining the run's flows" in shown


def test_run_commands_list_their_flags() -> None:
    assert all(flag in help_of("triage") for flag in RUN_FLAGS)
    assert all(flag in help_of("run") for flag in RUN_FLAGS)
    chat = help_of("chat")
    assert "--budget-tokens" in chat and "--app" in chat and "--no-wait" not in chat
    assert "--raw" in help_of("history") and "--json" not in help_of("history")


def test_app_accepts_a_file_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "weather_app.py").write_text(
        "import baton\n\n@baton.tool\ndef forecast_for(city: str) -> str:\n"
        '    """The forecast."""\n    return "sunny"\n\n'
        'weather_desk = baton.Agent("weather_desk", "Answer weather questions.", '
        "tools=[forecast_for])\n")
    app = load_app("./weather_app.py")
    assert [t.name for t in app.tools] == ["forecast_for"]
    assert [m.name for m in app.members] == ["weather_desk"]
    assert module_of_file("weather_app.py") == "weather_app"
    # A file of a package under the current directory keeps its dotted name.
    monkeypatch.chdir(ROOT)
    assert module_of_file("./examples/support_desk.py") == "examples.support_desk"
    for bad, said in [("./missing.py", "no such Python file"),
                      (str(ROOT / "README.md"), "no such Python file")]:
        with pytest.raises(AppError, match=said):
            load_app(bad)
    (tmp_path / "my-app.py").write_text("x = 1\n")
    with pytest.raises(AppError, match="'my-app' is not a name Python can import"):
        module_of_file(str(tmp_path / "my-app.py"))
    (tmp_path / "json.py").write_text("x = 1\n")
    with pytest.raises(AppError, match="a module named 'json' is already imported"):
        module_of_file(str(tmp_path / "json.py"))


def test_unknown_team_suggests_the_app_that_defines_it(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "desk").mkdir()
    (tmp_path / "desk" / "weather.py").write_text(
        'import baton\nw = baton.Agent(\n    "weather_desk", "x")\n')
    (tmp_path / "notes.py").write_text('import baton\nprint("weather_desk")\n')
    (tmp_path / "test_desk.py").write_text('import baton\nbaton.Agent("weather_desk", "x")\n')
    assert files_defining("weather_desk") == ["./desk/weather.py"]
    message = str(unknown_member("team or agent", "weather_desk", "teams: a", []))
    assert message == ("unknown team or agent 'weather_desk'; teams: a (your own are found "
                       "with --app MODULE or --app ./file.py; 'weather_desk' is defined in "
                       "./desk/weather.py: try --app ./desk/weather.py)")
    assert str(unknown_member("team or agent", "x", "teams: a", ["my_app"])) == \
        "unknown team or agent 'x'; teams: a"
    assert isinstance(unknown_member("team", "x", "", []), UsageError)


# -- list: newest first --------------------------------------------------------------


@dataclass
class Listed:
    id: str
    start_time: datetime


class VisibilityInItsOwnOrder:
    """A client whose list_workflows answers as the dev server does: running runs first,
    then closed ones by close time, whatever their start."""

    def __init__(self, runs: list[Listed]) -> None:
        self.runs = runs
        self.queries: list[str] = []

    async def list_workflows(self, query: str, page_size: int) -> Any:
        self.queries.append(query)
        since = None
        if "StartTime >= " in query:
            since = datetime.fromisoformat(query.rsplit("StartTime >= ", 1)[1].strip('"'))
        for run in self.runs:
            if since is None or run.start_time >= since:
                yield run


async def test_list_shows_the_newest_runs_first() -> None:
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    # The long run started first but closed last: visibility returns it first.
    order = [0, 5, 4, 1, 3, 2]
    runs = [Listed(f"run-{i}", t0 + timedelta(minutes=i)) for i in order]
    runs.append(Listed("run-6/child", t0 + timedelta(minutes=6)))
    client = VisibilityInItsOwnOrder(runs)
    shown = await newest(client, "q", 3, nested=False)  # type: ignore[arg-type]
    assert [r.id for r in shown] == ["run-5", "run-4", "run-3"]
    assert len(client.queries) == 2
    everything = await newest(client, "q", 10, nested=True)  # type: ignore[arg-type]
    assert [r.id for r in everything] == ["run-6/child", *(f"run-{i}" for i in range(5, -1, -1))]


# -- history: payloads decoded --------------------------------------------------------


def started_event(payload_data: dict[str, Any], codec: EncryptionCodec | None) -> HistoryEvent:
    [payload] = pydantic_data_converter.payload_converter.to_payloads([payload_data])
    if codec is not None:
        [payload] = codec.encode_payloads([payload])
    event = HistoryEvent(event_id=1, event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
    attributes = event.workflow_execution_started_event_attributes
    attributes.workflow_type.name = "TriageWorkflow"
    attributes.input.payloads.append(payload)
    attributes.memo.fields["note"].CopyFrom(
        pydantic_data_converter.payload_converter.to_payloads(["kept"])[0])
    return event


async def test_history_decodes_payloads_with_the_clients_converter() -> None:
    key = EncryptionCodec(b"k" * 32)
    data = {"member": "support_desk", "messages": [{"role": "user", "content": "hi"}]}
    history = WorkflowHistory("w", [started_event(data, key)])
    with_key = await readable(history, pydantic_data_converter.__class__(
        payload_converter_class=pydantic_data_converter.payload_converter_class,
        payload_codec=key))
    attributes = with_key.history["events"][0]["workflowExecutionStartedEventAttributes"]
    assert attributes["input"] == {"payloads": [data]}
    assert attributes["memo"] == {"fields": {"note": "kept"}}
    assert with_key.undecoded == 0
    # The history itself is untouched (it is what -o and --raw write).
    assert history.events[0].workflow_execution_started_event_attributes.input.payloads[
        0].metadata["encoding"] == ENCODING
    without = await readable(history, pydantic_data_converter)
    [shown] = without.history["events"][0]["workflowExecutionStartedEventAttributes"][
        "input"]["payloads"]
    assert without.undecoded == 1
    assert shown["metadata"]["encoding"] == "binary/encrypted"
    assert base64.b64decode(shown["data"])  # as recorded
    assert "support_desk" not in json.dumps(without.history)
