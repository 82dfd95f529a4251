"""The starter's run-management commands on a flow (baton/cli/runs.py, baton/runtime/recovery.py,
baton/cli/watch.py): `list`, `watch`, `history`, `replay` and `reset` work on a
`@baton.flow` run as on the built-in teams; a reset after an outage repeats no
completed model call.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

import baton
from tests.helpers import worker
from tests.test_starter import run_starter

drafter = baton.Agent("cli_drafter", "Draft a short note on the topic.",
                      model="offline:standard")
# Its own model, so an outage of that model fails the flow after the draft.
polisher = baton.Agent("cli_polisher", "Polish the note.", model="offline:fast",
                       retry={"max_attempts": 2, "initial_interval_s": 0.1})


@baton.flow
async def polished_note(topic: str) -> str:
    """Draft a note, then polish it."""
    draft = await drafter.run(topic)
    polished = await polisher.run(f"Polish this note:\n{draft.text}")
    return polished.text


async def test_list_watch_history_replay_and_reset_work_on_a_flow(
        env: WorkflowEnvironment, task_queue: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("BATON_OFFLINE_CALL_LOG", str(log))
    monkeypatch.setenv("BATON_OFFLINE_OUTAGE", "offline:fast")  # the polisher's model
    async with worker(env.client, task_queue):
        handle = await baton.start(polished_note, "durable notes", client=env.client,
                                   task_queue=task_queue)
        with pytest.raises(WorkflowFailureError):
            await handle.handle.result()
        run_id = handle.workflow_id

        code, out, err = await run_starter(env, task_queue, "list", "--json", "--limit", "200")
        assert code == 0, err
        [listed] = [r for r in json.loads(out) if r["workflow_id"] == run_id]
        assert listed["team"] == "polished_note" and listed["status"] == "failed"

        exported = tmp_path / "flow.json"
        code, _, err = await run_starter(env, task_queue, "history", run_id, "-o",
                                         str(exported))
        assert code == 0, err
        code, out, err = await run_starter(env, task_queue, "replay", "--file",
                                           str(exported))
        assert code == 1, out
        assert "NOT REPLAYED, its code is missing here (give --app MODULE)" in out
        assert "no flow or workflow named 'polished_note'" in out
        code, out, err = await run_starter(env, task_queue, "replay", "--file",
                                           str(exported), "--app", "tests.test_flow_cli")
        assert code == 0, err + out
        assert out.strip().endswith("events replayed, deterministic"), out

        monkeypatch.setenv("BATON_OFFLINE_OUTAGE", "")  # the provider is back
        code, out, err = await run_starter(env, task_queue, "reset", run_id, "--json")
        assert code == 0, err + out
        assert json.loads(out)["kept_completions"] == 1  # the draft
        final = env.client.get_workflow_handle(run_id)
        result = await final.result()

        code, out, err = await run_starter(env, task_queue, "watch", run_id)
    assert code == 0, err
    assert "cli_drafter" in out and "cli_polisher" in out
    assert result["status"] == "ok" and result["member"] == "polished_note"
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    answered = Counter(c["agent"] for c in calls if c["run"].startswith(run_id)
                       and c.get("outcome", "ok") == "ok")
    assert answered["cli_drafter"] == 1  # kept by the reset, never asked again
