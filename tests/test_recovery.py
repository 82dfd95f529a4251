"""recovery.py: history export, replay against today's code, reset of failed runs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from baton.core.runs import PipelineResult, TriageResult
from baton.define.app import load_app
from baton.runtime import recovery
from tests.helpers import fast_catalogue, finish, start, worker
from tests.test_starter import run_starter

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_committed_histories_exist_for_every_pattern() -> None:
    names = {p.stem.rsplit("-", 1)[0] for p in HISTORIES}
    assert names == {"triage", "fanout", "supervisor", "pipeline", "composed",
                     "pipeline-failed", "coordinator", "tools", "session", "flow-tale"}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_committed_history_replays_with_todays_code(path: Path) -> None:
    # The "tools" run used an app's contract, the flows are an app's: replay, like
    # their worker, imports the apps.
    load_app("tests.data.tool_app")
    load_app("tests.flow_app")
    history = recovery.load_history(path.name, path.read_text())
    [report] = await recovery.replay([history])
    assert report.ok, report.error


async def test_replay_reports_nondeterminism_instead_of_raising() -> None:
    text = (Path(__file__).parent / "histories" / "triage-0.json").read_text()
    data = json.loads(text)
    # Pretend the recorded run called another agent first: today's code disagrees.
    for event in data["events"]:
        attrs = event.get("activityTaskScheduledEventAttributes")
        if attrs:
            attrs["activityType"]["name"] = "some_other_activity"
            break
    [report] = await recovery.replay([WorkflowHistory.from_json("tampered", data)])
    assert not report.ok and "some_other_activity" in (report.error or "")


@pytest.mark.parametrize(("text", "expected"), [
    ("not json", "is not a Temporal history"),
    ('{"events": []}', "does not begin with a WorkflowExecutionStarted event"),
    ('{"foo": 1}', "is not a Temporal history"),
])
def test_load_history_refuses_what_is_not_a_history(text: str, expected: str) -> None:
    with pytest.raises(recovery.RecoveryError, match=expected):
        recovery.load_history("run.json", text)


async def test_reset_after_an_outage_repeats_no_completed_call(
        env: WorkflowEnvironment, task_queue: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("BATON_OFFLINE_CALL_LOG", str(log))
    monkeypatch.setenv("BATON_OFFLINE_OUTAGE", "offline:fast")  # the formatter's model
    async with worker(env.client, task_queue):
        handle = await start(env.client, task_queue, "article_pipeline", "Durable agents",
                             cat=fast_catalogue(), result_type=PipelineResult)
        with pytest.raises(WorkflowFailureError):
            await finish(handle)
        monkeypatch.setenv("BATON_OFFLINE_OUTAGE", "")  # the provider is back
        report = await recovery.reset(env.client, handle.id)
        result = await finish(env.client.get_workflow_handle(handle.id,
                                                             result_type=PipelineResult))
    assert report.kept_completions == 3  # outliner, writer, editor
    assert result.status == "ok"
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    answered = Counter((c["agent"], c["call"]) for c in calls if c["run"] == handle.id)
    assert answered == {("outliner", 0): 1, ("writer", 0): 1, ("editor", 0): 1,
                        ("formatter", 0): 1}


async def test_reset_refusals(env: WorkflowEnvironment, task_queue: str) -> None:
    with pytest.raises(recovery.RecoveryError, match="no workflow 'nope-123'"):
        await recovery.reset(env.client, "nope-123")
    # no worker: the run stays running, which is no reason to reset it
    handle = await start(env.client, task_queue, "support_desk", "hi",
                         result_type=TriageResult)
    with pytest.raises(recovery.RecoveryError, match=r"is running; .*add --force"):
        await recovery.reset(env.client, handle.id)
    await handle.terminate("test cleanup")


async def test_cli_history_export_and_replay(env: WorkflowEnvironment, task_queue: str,
                                             tmp_path: Path) -> None:
    async with worker(env.client, task_queue):
        handle = await start(env.client, task_queue, "research_panel", "Rust or Go?",
                             result_type=TriageResult)
        await finish(handle)
    out = tmp_path / "run.json"
    code, text, err = await run_starter(env, task_queue, "history", handle.id, "-o", str(out))
    assert code == 0, err
    assert f"to {out}" in text
    code, text, err = await run_starter(env, task_queue, "replay", "--file", str(out))
    assert code == 0, err
    assert "events replayed, deterministic" in text
    code, text, err = await run_starter(env, task_queue, "replay", handle.id)
    assert code == 0 and text.count("deterministic") == 4  # the fan-out and three branches
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    code, text, err = await run_starter(env, task_queue, "replay", "--file", str(bad))
    assert code == 2 and "is not a Temporal history" in err and "Traceback" not in err
    code, _, err = await run_starter(env, task_queue, "reset", "missing-run")
    assert code == 2 and "no workflow 'missing-run'" in err
