"""Turn one `make bench` results file into the goals, a table and three charts.

    python bench/report.py .bench/results.jsonl [--charts docs]

Prints the goals of issue "No size limits" (each Baton figure beside its baseline
from the same run, the ratio and whether the goal is met), every other figure beside
its baseline, and what each part of the run took. Draws, into --charts, the step
chart (bench-step.png: Baton against raw Temporal, p50 and p95, per store and
pattern), the throughput chart (bench-throughput.png) and the fan-out chart
(fanout.png: wall time against N for Baton, raw Temporal and plain asyncio), with
matplotlib (installed by `make bench`; without it the charts are skipped with a note).
Lines it does not know, or with keys missing, are skipped or shown with what they have.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

Figure = dict[str, Any]
Row = tuple[str, ...]
MB = 1024 * 1024


def num(value: Any, unit: str = "") -> str:
    """A figure as printed, or "?" when the line lacks it."""
    if value is None:
        return "?"
    if isinstance(value, float):
        value = f"{value:,.2f}".rstrip("0").rstrip(".")
    elif isinstance(value, int) and not isinstance(value, bool):
        value = f"{value:,}"
    return f"{value}{unit}"


def ratio(value: Any, baseline: Any) -> float | None:
    try:
        return float(value) / float(baseline)
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def verdict(measured: float | None, ok: Callable[[float], bool], note: str = "") -> str:
    if measured is None:
        return "not measured"
    return ("yes" if ok(measured) else "no") + (f" ({note})" if note else "")


def at_most(limit: float) -> Callable[[float], bool]:
    return lambda measured: measured <= limit


def at_least(limit: float) -> Callable[[float], bool]:
    return lambda measured: measured >= limit


def below(limit: float) -> Callable[[float], bool]:
    return lambda measured: measured < limit


def of(figures: Iterable[Figure], kind: str) -> list[Figure]:
    return [f for f in figures if f.get("bench") == kind]


# Goals ------------------------------------------------------------------------------


def step_goals(figures: list[Figure]) -> list[Row]:
    rows: list[Row] = []
    for f in of(figures, "step"):
        where = f"{f.get('store', '?')} store, {f.get('pattern', '?')}"
        for q, limit in (("p50", 1.1), ("p95", 1.3)):
            baton, raw = f.get(f"ms_per_step_{q}"), f.get(f"raw_ms_per_step_{q}")
            r = ratio(baton, raw)
            rows.append((f"step {q} <= {limit}x raw ({where})", num(baton, " ms"),
                         f"raw {num(raw, ' ms')}", num(r and round(r, 2), "x"),
                         verdict(r, at_most(limit))))
    return rows


def throughput_goals(figures: list[Figure]) -> list[Row]:
    rows: list[Row] = []
    for f in of(figures, "throughput"):
        if f.get("workers", 1) != 1:
            continue
        runs = f.get("runs")
        r = ratio(f.get("runs_per_s"), f.get("raw_runs_per_s"))
        rows.append((f"throughput >= 1.0x raw, {num(runs)} concurrent runs",
                     num(f.get("runs_per_s"), " runs/s"),
                     f"raw {num(f.get('raw_runs_per_s'), ' runs/s')}",
                     num(r and round(r, 2), "x"),
                     verdict(r, at_least(1.0),
                             "" if runs == 500 else "the goal's scale is 500 runs")))
    return rows


def waiting_goals(figures: list[Figure]) -> list[Row]:
    rows: list[Row] = []
    for f in of(figures, "waiting"):
        if "resumes_per_s" not in f:
            continue
        waiting = f.get("waiting_on_server", f.get("runs"))
        scale = (f"{num(waiting)} waiting ({num(f.get('runs'))} Baton + "
                 f"{num(f.get('raw_runs'))} raw), resumed "
                 f"{num(f.get('released', f.get('runs')))} / "
                 f"{num(f.get('raw_released', f.get('raw_runs')))}")
        r = ratio(f.get("resumes_per_s"), f.get("raw_resumes_per_s"))
        rows.append((f"resumes >= 0.9x raw, {scale}", num(f.get("resumes_per_s"), " /s"),
                     f"raw {num(f.get('raw_resumes_per_s'), ' /s')}",
                     num(r and round(r, 2), "x"),
                     verdict(r, at_least(0.9), "" if (f.get("runs") or 0) >= 10_000
                             else "the goal's scale is 10,000 of Baton's runs waiting, "
                                  "all released")))
    return rows


def fanout_goals(figures: list[Figure]) -> list[Row]:
    fanouts = [f for f in of(figures, "fanout") if f.get("branch_runs", "auto") == "auto"
               and isinstance(f.get("n"), int)]
    if not fanouts:
        return []
    largest = max(fanouts, key=lambda f: f["n"])
    r = ratio(largest.get("wall_s"), largest.get("baseline_s"))
    floor = largest.get("raw_activities_s")
    floor_note = f"; floor: raw Temporal, N activities {num(floor, ' s')}" if floor else ""
    return [(f"fan-out {num(largest['n'])} branches <= 3x asyncio",
             num(largest.get("wall_s"), " s"),
             f"asyncio {num(largest.get('baseline_s'), ' s')}{floor_note}",
             num(r and round(r, 2), "x"),
             verdict(r, at_most(3.0),
                     "" if largest["n"] >= 1000 else "the goal's scale is 1,000"))]


def history_goals(figures: list[Figure]) -> list[Row]:
    """The 1890 conversation ("history" lines) and the large document ("document")."""
    rows: list[Row] = []
    for f in [*of(figures, "history"), *of(figures, "document")]:
        if f.get("bench") == "document":
            what = f"{num(f.get('mb'))} MB document, {f.get('pattern', 'pipeline')}"
            small = "" if (f.get("mb") or 0) >= 20 else "the goal's scale is 20 MB"
        elif "calls" in f:
            what = f"{num(f.get('calls'))} model calls, {num(f.get('tokens'))} tokens"
            small = "" if (f.get("calls") or 0) >= 100 else "the goal's scale is 100 calls"
        else:
            what, small = "history bench", ""
        size, base = f.get("history_bytes"), f.get("baseline_history_bytes")
        rows.append((f"history < 5 MB ({what})",
                     num(size and round(size / MB, 2), " MB"),
                     f"re-sent conversation {num(base and round(base / MB, 2), ' MB')}"
                     if base else "",
                     num(ratio(size, base) and round(size / base, 3), "x") if base else "",
                     verdict(size, below(5 * MB), small)))
        rows.append((f"history < 2,000 events ({what})", num(f.get("events")),
                     num(f.get("baseline_events")) if "baseline_events" in f else "", "",
                     verdict(f.get("events"), below(2000), small)))
        if "replayed" in f:
            rows.append((f"history replays ({what})", str(f["replayed"]).lower(), "", "",
                         "yes" if f["replayed"] is True else "no"))
    return rows


def goals(figures: list[Figure]) -> list[Row]:
    return [*step_goals(figures), *throughput_goals(figures), *waiting_goals(figures),
            *fanout_goals(figures), *history_goals(figures)]


# Every figure ------------------------------------------------------------------------


def _latencies(ms: dict[str, float] | None) -> str:
    return ", ".join(f"{name} {value}" for name, value in (ms or {}).items())


def fanout_row(f: Figure) -> list[Row]:
    runs = f.get("branch_runs", "auto")
    cpu = (f"; CPU per branch: server {f['server_cpu_ms_per_branch']} ms, worker "
           f"{f.get('worker_cpu_ms_per_branch')} ms" if f.get("server_cpu_ms_per_branch")
           is not None else "")
    if f.get("raw_server_cpu_ms_per_branch") is not None:
        cpu += (f" (raw {f['raw_server_cpu_ms_per_branch']} / "
                f"{f.get('raw_worker_cpu_ms_per_branch')} ms)")
    raw = (f", raw children {f['raw_s']} s" if f.get("raw_s") is not None
           else ", raw children not run")
    if f.get("raw_activities_s") is not None:
        raw = f", raw N activities {f['raw_activities_s']} s{raw}"
    return [(f"fan-out N={f.get('n')} ({f.get('latency_s')} s calls"
             + (f", branches as {runs}" if runs != "auto" else "") + ")",
             f"{f.get('wall_s')} s{cpu}", f"asyncio {f.get('baseline_s')} s{raw}",
             f"{f.get('ratio')}x asyncio")]


def step_row(f: Figure) -> list[Row]:
    where = f"{f.get('store', '?')} store, {f.get('pattern')}"
    rows: list[Row] = [(f"step, {where} (p50 / p95)",
             f"{f.get('ms_per_step_p50')} / {f.get('ms_per_step_p95')} ms",
             f"raw {f.get('raw_ms_per_step_p50')} / {f.get('raw_ms_per_step_p95')} ms",
             f"{num(ratio(f.get('ms_per_step_p50'), f.get('raw_ms_per_step_p50')))}x / "
             f"{num(ratio(f.get('ms_per_step_p95'), f.get('raw_ms_per_step_p95')))}x raw")]
    if f.get("sdk_ms"):
        rows.append((f"step, {where}: SDK latencies (mean ms)", _latencies(f["sdk_ms"]),
                     "raw " + _latencies(f.get("raw_sdk_ms")), ""))
    return rows


def waiting_row(f: Figure) -> list[Row]:
    if "resumes_per_s" not in f:
        return [(f"{num(f.get('runs'))} runs waiting for a person",
                 f"worker {f.get('worker_rss_mb')} MB RSS", "", "")]
    raw = f.get("raw_resumes_per_s")
    return [(f"{num(f.get('released', f.get('runs')))} of {num(f.get('runs'))} waiting runs "
             "released", f"{f['resumes_per_s']} resumes/s, {f.get('db_kb_per_run')} KB/run in "
             f"the db, worker {f.get('worker_rss_mb')} MB RSS",
             f"raw {raw} resumes/s ({num(f.get('raw_released', f.get('raw_runs')))} of "
             f"{num(f.get('raw_runs'))}), worker {f.get('raw_worker_rss_mb', '?')} MB RSS"
             if raw else "",
             f"{num(ratio(f['resumes_per_s'], raw))}x raw" if raw else "")]


def simple_row(f: Figure) -> list[Row]:
    """One line for the benches whose figures stand alone (no baseline of their own)."""
    kind = f.get("bench")
    if kind == "tool":
        return [("tool call orchestration (p50)", f"{f.get('ms_per_call')} ms",
                 f"plain activity {f.get('raw_ms_per_activity')} ms", f"{f.get('ratio')}x")]
    if kind == "mcp":
        return [("MCP tool call orchestration (p50 / p95)",
                 f"{f.get('ms_per_call')} / {f.get('ms_per_call_p95')} ms, plus the server "
                 f"round trip {f.get('round_trip_ms')} ms",
                 f"@baton.tool {f.get('tool_ms_per_call')} / {f.get('tool_ms_per_call_p95')} ms",
                 f"{f.get('ratio')}x @baton.tool")]
    if kind == "flow_step":
        return [("flow, per agent.run step (p50 / p95)",
                 f"{f.get('ms_per_step_p50')} / {f.get('ms_per_step_p95')} ms",
                 f"raw {f.get('raw_ms_per_step_p50')} / {f.get('raw_ms_per_step_p95')} ms",
                 f"{f.get('ratio_p50')}x / {f.get('ratio_p95')}x raw")]
    if kind == "throughput":
        return [(f"throughput, {num(f.get('runs'))} triage runs, {f.get('workers')} worker(s)",
                 f"{f.get('runs_per_s')} runs/s", f"raw {f.get('raw_runs_per_s')} runs/s",
                 f"{f.get('ratio')}x raw")]
    if kind == "overhead":
        return [(f"{f.get('feature')}: pipeline step / fan-out N=100",
                 f"{f.get('step_ms')} ms / {f.get('fanout100_s')} s",
                 f"without {f.get('plain_step_ms')} ms / {f.get('plain_fanout100_s')} s",
                 f"{f.get('step_ratio')}x / {f.get('fanout100_ratio')}x")]
    rest = json.dumps({k: v for k, v in f.items() if k not in ("bench", "figure")})
    return [(f"{kind}: {f.get('figure', '')}".rstrip(": "), rest[:100], "", "")]


ROWS: dict[str, Callable[[Figure], list[Row]]] = {
    "fanout": fanout_row, "step": step_row, "waiting": waiting_row}
SKIPPED = {"time"}


def rows(figures: list[Figure]) -> list[Row]:
    """(figure, Baton, baseline, ratio or note) for each measured line."""
    table: list[Row] = []
    for f in figures:
        kind = f.get("bench")
        if kind in SKIPPED or not isinstance(kind, str):
            continue
        table += ROWS.get(kind, simple_row)(f)
    return table


def times(figures: list[Figure]) -> list[Row]:
    parts = of(figures, "time")
    table: list[Row] = [(f.get("part", "?"), num(f.get("wall_s"), " s"),
                         "ok" if f.get("status") == 0 else f"failed ({f.get('status')})")
                        for f in parts]
    total = sum(float(f.get("wall_s") or 0) for f in parts)
    return [*table, ("all parts", num(round(total, 1), " s"), "")] if table else []


def print_table(title: str, header: Row, table: list[Row]) -> None:
    if not table:
        return
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    print(f"\n{title}")
    for row in [header, *table]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


# Charts -----------------------------------------------------------------------------


def step_chart(plt: Any, figures: list[Figure], path: Path) -> str:
    steps = [f for f in of(figures, "step") if f.get("raw_ms_per_step_p50") is not None]
    if not steps:
        return "no step figures: step chart skipped"
    labels = [f"{f.get('pattern')}\n{f.get('store', '?')} store" for f in steps]
    series = [("Baton p50", "ms_per_step_p50", "#1f77b4", ""),
              ("raw p50", "raw_ms_per_step_p50", "#ff7f0e", ""),
              ("Baton p95", "ms_per_step_p95", "#1f77b4", "//"),
              ("raw p95", "raw_ms_per_step_p95", "#ff7f0e", "//")]
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=120)
    width = 0.2
    for i, (label, key, colour, hatch) in enumerate(series):
        xs = [x + (i - 1.5) * width for x in range(len(steps))]
        ax.bar(xs, [f.get(key) or 0 for f in steps], width, label=label, color=colour,
               hatch=hatch, edgecolor="white" if not hatch else "black", alpha=0.9)
    ax.set_xticks(range(len(steps)), labels)
    ax.set_ylabel("orchestration per step (ms)")
    ax.set_title("Per sequential model call: Baton against raw Temporal, same run")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(ncols=2, fontsize="small")
    return save(fig, path)


def throughput_chart(plt: Any, figures: list[Figure], path: Path) -> str:
    lines = of(figures, "throughput")
    if not lines:
        return "no throughput figures: throughput chart skipped"
    labels = [f"{num(f.get('runs'))} runs\n{f.get('workers', 1)} worker(s)" for f in lines]
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    width = 0.3
    xs = range(len(lines))
    for offset, key, label in ((-width / 2, "runs_per_s", "Baton (triage: router, then "
                                "specialist)"),
                               (width / 2, "raw_runs_per_s", "raw Temporal (two no-op "
                                "activities)")):
        bars = ax.bar([x + offset for x in xs], [f.get(key) or 0 for f in lines], width,
                      label=label)
        ax.bar_label(bars, fmt="%.1f")
    ax.set_xlim(-0.75, len(lines) - 0.25)
    ax.set_ylim(top=1.3 * max(max(f.get("runs_per_s") or 0, f.get("raw_runs_per_s") or 0)
                              for f in lines) or 1)
    ax.set_xticks(list(xs), labels)
    ax.set_ylabel("runs completed per second")
    ax.set_title("Throughput, all runs started at once, same run")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="small", loc="upper right")
    return save(fig, path)


def fanout_chart(plt: Any, figures: list[Figure], path: Path) -> str:
    fanout = sorted((f for f in of(figures, "fanout")
                     if f.get("branch_runs", "auto") == "auto" and f.get("n")),
                    key=lambda f: f["n"])
    if not fanout:
        return "no fan-out figures: fan-out chart skipped"
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    ax.plot([f["n"] for f in fanout], [f.get("wall_s") for f in fanout], "o-",
            label="Baton (fan-out workflow)")
    raw = [f for f in fanout if f.get("raw_s") is not None]
    if raw:
        upto = "" if len(raw) == len(fanout) else f", run up to N = {raw[-1]['n']}"
        ax.plot([f["n"] for f in raw], [f["raw_s"] for f in raw], "s--",
                label=f"raw Temporal (child per branch{upto})")
    floor = [f for f in fanout if f.get("raw_activities_s") is not None]
    if floor:
        ax.plot([f["n"] for f in floor], [f["raw_activities_s"] for f in floor], "d-.",
                label="raw Temporal (one workflow, N activities)")
    ax.plot([f["n"] for f in fanout], [f.get("baseline_s") for f in fanout], "^:",
            label="plain asyncio.gather")
    ax.set_xlabel(f"branches (N), each a model call of {fanout[0].get('latency_s', 1.0)} s")
    ax.set_ylabel("wall time (s)")
    ax.set_title("Fan-out wall time against N (2-core machine, embedded server)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return save(fig, path)


def save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return f"chart written to {path}"


def charts(figures: list[Figure], directory: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ["matplotlib is not installed: charts skipped (pip install matplotlib)"]
    return [step_chart(plt, figures, directory / "bench-step.png"),
            throughput_chart(plt, figures, directory / "bench-throughput.png"),
            fanout_chart(plt, figures, directory / "fanout.png")]


def load(path: Path) -> list[Figure]:
    figures = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            try:
                figure = json.loads(line)
            except json.JSONDecodeError:
                continue  # a part killed mid-line
            if isinstance(figure, dict):
                figures.append(figure)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results")
    parser.add_argument("--charts", default="docs", help="directory the charts go to")
    args = parser.parse_args()
    figures = load(Path(args.results))
    print_table("Goals (issue 'No size limits'), each against its baseline from this run",
                ("goal", "Baton", "baseline (same run)", "ratio", "met"), goals(figures))
    print_table("Every figure", ("figure", "Baton", "baseline (same run)", "ratio"),
                rows(figures))
    print_table("What each part took", ("part", "wall time", "status"), times(figures))
    print()
    for note in charts(figures, Path(args.charts)):
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
