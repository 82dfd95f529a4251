"""Turn the benchmarks' JSON lines into a human table and the fan-out chart.

    python bench/report.py .bench/results.jsonl [--chart docs/fanout.png]

Prints a table of every figure beside its baseline from the same run, and draws fan-out
wall time against N for Baton, raw Temporal and plain asyncio (matplotlib, installed
by `make bench`; without it the chart is skipped with a note).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def rows(figures: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(figure, Baton, baseline, ratio or note) for each measured line."""
    table = []
    for f in figures:
        kind = f.get("bench")
        if kind == "fanout":
            runs = f.get("branch_runs", "auto")
            cpu = (f"; CPU per branch: server {f['server_cpu_ms_per_branch']} ms, worker "
                   f"{f['worker_cpu_ms_per_branch']} ms (raw {f['raw_server_cpu_ms_per_branch']}"
                   f" / {f['raw_worker_cpu_ms_per_branch']} ms)"
                   if f.get("server_cpu_ms_per_branch") is not None else "")
            table.append((f"fan-out N={f['n']} ({f['latency_s']} s calls"
                          + (f", branches as {runs}" if runs != "auto" else "") + ")",
                          f"{f['wall_s']} s{cpu}",
                          f"asyncio {f['baseline_s']} s, raw {f['raw_s']} s",
                          f"{f['ratio']}x asyncio"))
        elif kind == "step":
            table.append((f"step, {f['pattern']} (p50 / p95)",
                          f"{f['ms_per_step_p50']} / {f['ms_per_step_p95']} ms",
                          f"raw {f['raw_ms_per_step_p50']} / {f['raw_ms_per_step_p95']} ms",
                          f"{f['ms_per_step_p50'] / f['raw_ms_per_step_p50']:.2f}x raw"))
            if f.get("sdk_ms"):
                table.append((f"step, {f['pattern']}: SDK latencies (mean ms)",
                              _latencies(f["sdk_ms"]), "raw " + _latencies(f["raw_sdk_ms"]),
                              ""))
        elif kind == "flow_step":
            table.append(("flow, per agent.run step (p50 / p95)",
                          f"{f['ms_per_step_p50']} / {f['ms_per_step_p95']} ms",
                          f"raw workflow, same activity, unsandboxed "
                          f"{f['raw_ms_per_step_p50']} / {f['raw_ms_per_step_p95']} ms",
                          f"{f['ratio_p50']}x / {f['ratio_p95']}x raw"))
        elif kind == "throughput":
            table.append((f"throughput, {f['runs']} triage runs, {f['workers']} worker(s)",
                          f"{f['runs_per_s']} runs/s", f"raw {f['raw_runs_per_s']} runs/s",
                          f"{f['ratio']}x raw"))
        elif kind == "tool":
            table.append(("tool call orchestration (p50)", f"{f['ms_per_call']} ms",
                          f"plain activity {f['raw_ms_per_activity']} ms",
                          f"{f['ratio']}x plain"))
        elif kind == "mcp":
            table.append(("MCP tool call orchestration (p50 / p95)",
                          f"{f['ms_per_call']} / {f['ms_per_call_p95']} ms, plus the "
                          f"server round trip {f['round_trip_ms']} ms",
                          f"@baton.tool {f['tool_ms_per_call']} / "
                          f"{f['tool_ms_per_call_p95']} ms",
                          f"{f['ratio']}x @baton.tool"))
        elif kind == "waiting" and "resumes_per_s" in f:
            raw = f.get("raw_resumes_per_s")
            table.append((f"{f['runs']} runs released",
                          f"{f['resumes_per_s']} resumes/s, {f['db_kb_per_run']} KB/run "
                          "in the db",
                          f"raw {raw} resumes/s ({f.get('raw_runs')} runs)" if raw else "",
                          f"{f['resumes_per_s'] / raw:.2f}x raw" if raw else ""))
        elif kind == "waiting":
            table.append((f"{f['runs']} runs waiting for a person",
                          f"worker {f['worker_rss_mb']} MB RSS", "", ""))
        elif kind == "overhead":
            table.append((f"{f['feature']}: pipeline step / fan-out N=100",
                          f"{f['step_ms']} ms / {f['fanout100_s']} s",
                          f"without {f['plain_step_ms']} ms / {f['plain_fanout100_s']} s",
                          f"{f['step_ratio']}x / {f['fanout100_ratio']}x"))
        elif kind == "session":
            table.append((f"session: {f.get('figure', '')}",
                          json.dumps({k: v for k, v in f.items()
                                      if k not in ("bench", "figure")})[:90], "", ""))
    return table


def _latencies(ms: dict[str, float]) -> str:
    return ", ".join(f"{name} {value}" for name, value in ms.items())


def chart(figures: list[dict[str, Any]], path: Path) -> str:
    fanout = sorted((f for f in figures if f.get("bench") == "fanout"
                     and f.get("branch_runs", "auto") == "auto"), key=lambda f: f["n"])
    if not fanout:
        return "no fan-out figures: chart skipped"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: chart skipped (pip install matplotlib)"
    ns = [f["n"] for f in fanout]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    ax.plot(ns, [f["wall_s"] for f in fanout], "o-", label="Baton (fan-out workflow)")
    ax.plot(ns, [f["raw_s"] for f in fanout], "s--", label="raw Temporal (child per branch)")
    ax.plot(ns, [f["baseline_s"] for f in fanout], "^:", label="plain asyncio.gather")
    ax.set_xlabel("branches (N), each a model call of 1 s")
    ax.set_ylabel("wall time (s)")
    ax.set_title("Fan-out wall time against N (2-core machine, embedded server)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return f"chart written to {path}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results")
    parser.add_argument("--chart", default="docs/fanout.png")
    args = parser.parse_args()
    figures = [json.loads(line) for line in Path(args.results).read_text().splitlines()
               if line.startswith("{")]
    table = rows(figures)
    widths = [max(len(r[i]) for r in [("figure", "Baton", "baseline", "ratio"), *table])
              for i in range(4)]
    for row in [("figure", "Baton", "baseline (same run)", "ratio"), *table]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(chart(figures, Path(args.chart)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
