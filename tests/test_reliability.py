"""The reliability suite's fast subset: `make reliability`'s own scenario code
(scripts/reliability.py) with one seeded kill -9 of the worker and one dev-server
restart, each landing in the middle of a run of every pattern, the composed team,
the tool-using agent and a session. Real processes: a dev server of its own, workers
and starters. Every run must end ok, and no completed call may be made again.
"""

from __future__ import annotations

from pathlib import Path

from scripts.reliability import Options, run_suite

SEED = 20261127


async def test_a_killed_worker_and_a_restarted_server_lose_nothing(tmp_path: Path) -> None:
    options = Options(seed=SEED, kills=1, restarts=1, only=("worker_kill", "server_restart"))
    suite = await run_suite(options, tmp_path, say=print)
    assert [s.name for s in suite.scenarios] == ["worker_kill", "server_restart"]
    for scenario in suite.scenarios:
        trouble = [f"{r.target.name} {r.workflow_id}: {r.status} {r.reason} {r.errors}"
                   for r in scenario.runs if not r.completed]
        assert scenario.started == 7 and scenario.lost == 0, (scenario.name, trouble)
        assert scenario.repeated == 0, (scenario.name, scenario.calls.problems)
        assert not scenario.calls.problems, (scenario.name, scenario.calls.problems)
        assert scenario.calls.model_calls > 0
        # The fault landed while runs were in flight (they were started around it).
        assert sum(r.hit for r in scenario.runs) >= 4, scenario.name
    # Every process the suite started is gone.
    assert all(not p.alive for p in suite.cluster.procs)
