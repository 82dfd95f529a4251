"""A run report: one self-contained HTML page (and a PNG of it) a person would rather
look at than read: what was asked, the answer (a contract's output as fields), who
did what, and where time and money went, step by step on a time line.

The tree is the console's (baton/web/tree.py) and so is its stylesheet
(static/tree.css, inlined), so the report shows a run exactly as the console does.
`write_png` renders the page with headless Chromium (Debian's `chromium`; nothing is
downloaded).
"""

from __future__ import annotations

import asyncio
import html
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from baton.web.tree import RunTree, TreeNode

STATIC = Path(__file__).parent / "static"
KIND_LABELS = {"run": "run", "model": "model", "tool": "tool", "guardrail": "guard",
               "check": "check", "approval": "approval", "wait": "wait"}
CHROMIUM_ENV = "BATON_CHROMIUM"
PNG_WIDTH = 1280
RENDER_TIMEOUT_S = 60.0


class ReportError(RuntimeError):
    """The picture cannot be made (no Chromium, or it failed); the message says why."""


def render_html(tree: RunTree) -> str:
    """The report as one HTML page with its styles inlined."""
    root = tree.root
    styles = "".join((STATIC / name).read_text()
                     for name in ("style.css", "tree.css", "report.css"))
    return "".join([
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Run report · {_e(root.title)}</title><style>{styles}</style>",
        "</head><body class='report'><main>",
        _header(tree), _question_and_answer(tree), _by_agent(root),
        "<section class='card tree-card'><h2>Steps</h2>", _tree(tree), "</section>",
        f"<footer class='muted small'>Read from the run's history at "
        f"{tree.read_at:%Y-%m-%d %H:%M:%S} UTC by <code>starter.py report</code>.</footer>",
        "</main></body></html>"])


async def write_png(page: str, target: Path) -> None:
    """A picture of `page` (HTML), as tall as its content, by headless Chromium."""
    chromium = find_chromium()
    with tempfile.TemporaryDirectory(prefix="baton-report-") as folder:
        source = Path(folder) / "report.html"
        source.write_text(page)
        height = _height(page)
        command = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
                   "--disable-background-networking", "--disable-component-update",
                   "--disable-sync", "--no-first-run", "--hide-scrollbars",
                   f"--user-data-dir={folder}/profile", f"--window-size={PNG_WIDTH},{height}",
                   f"--screenshot={target.resolve()}", source.as_uri()]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            output, _ = await asyncio.wait_for(process.communicate(), RENDER_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            raise ReportError(f"Chromium took longer than {RENDER_TIMEOUT_S:g} s") from None
    if process.returncode != 0 or not target.exists():
        tail = output.decode(errors="replace").strip().splitlines()[-3:]
        raise ReportError(f"Chromium could not render the report: {' / '.join(tail)}")


def find_chromium() -> str:
    """Chromium's path: BATON_CHROMIUM, else the first of its usual names on PATH."""
    if (given := os.environ.get(CHROMIUM_ENV)) is not None:
        if shutil.which(given) is None:
            raise ReportError(f"{CHROMIUM_ENV}={given!r} is not an executable")
        return given
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if (found := shutil.which(name)) is not None:
            return found
    raise ReportError("--png needs Chromium: install Debian's package (apt-get install "
                      f"chromium) or set {CHROMIUM_ENV} to a Chromium executable")


# --- parts of the page -------------------------------------------------------------

def _header(tree: RunTree) -> str:
    root = tree.root
    link = tree.links.get(root.id)
    ended = root.ended_at or tree.read_at
    stats = [("Status", _pill(root.status)),
             ("Duration", _e(_seconds((ended - root.started_at).total_seconds()))),
             ("Tokens", f"{root.tokens:,}"),
             ("Cost", _e(_usd(root.cost_usd))),
             ("Model calls", str(sum(1 for n in _walk(root) if n.kind == "model"))),
             ("Nested runs", str(sum(1 for n in _walk(root) if n.kind == "run") - 1))]
    return "".join([
        "<header class='report-head'><div>",
        "<div class='eyebrow'>Baton run report</div>",
        f"<h1>{_e(root.title)} <span class='muted pattern'>{_e(root.model or '')}</span></h1>",
        f"<div class='muted mono'>{_e(root.id)} · started "
        f"{root.started_at:%Y-%m-%d %H:%M:%S} UTC</div></div>",
        f"<a class='external' href='{_e(link)}'>Full history in the Temporal Web UI ↗</a>"
        if link else "", "</header>",
        "<section class='stats'>", *(f"<div class='stat-box'><div class='stat-label'>{k}"
                                     f"</div><div class='stat-value'>{v}</div></div>"
                                     for k, v in stats), "</section>"])


def _question_and_answer(tree: RunTree) -> str:
    parts = ["<section class='qa'>"]
    if tree.prompt:
        parts.append(f"<div class='card'><h2>Asked</h2><div class='prose'>{_e(tree.prompt)}"
                     "</div></div>")
    if tree.error:
        parts.append(f"<div class='card'><h2>Error</h2><div class='error-box'>"
                     f"{_e(tree.error)}</div></div>")
    elif tree.output:
        parts.append(f"<div class='card'><h2>Answer</h2>{_fields(tree.output)}</div>")
    elif tree.answer:
        parts.append(f"<div class='card'><h2>Answer</h2><div class='prose'>{_e(tree.answer)}"
                     "</div></div>")
    parts.append("</section>")
    return "".join(parts)


def _by_agent(root: TreeNode) -> str:
    """Where the money and the time went, per agent."""
    rows: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"calls": 0, "tokens": 0, "cost": 0.0, "seconds": 0.0})
    for node in _walk(root):
        if node.kind != "model":
            continue
        row = rows[node.agent or node.title]
        row["calls"] += 1
        row["tokens"] += node.tokens
        row["cost"] = None if row["cost"] is None or node.cost_usd is None \
            else row["cost"] + node.cost_usd
        if node.ended_at:
            row["seconds"] += (node.ended_at - node.started_at).total_seconds()
    if not rows:
        return ""
    most = max(r["tokens"] for r in rows.values()) or 1
    body = "".join(
        f"<tr><td><strong>{_e(agent)}</strong></td><td class='num'>{r['calls']}</td>"
        f"<td class='num'>{r['tokens']:,}</td><td><div class='share'><div style='width:"
        f"{100 * r['tokens'] / most:.1f}%'></div></div></td>"
        f"<td class='num'>{_e(_seconds(r['seconds']))}</td>"
        f"<td class='num'>{_e(_usd(r['cost']))}</td></tr>"
        for agent, r in sorted(rows.items(), key=lambda kv: -kv[1]["tokens"]))
    return ("<section class='card agents'><h2>By agent</h2><table><thead><tr><th>Agent</th>"
            "<th class='num'>Calls</th><th class='num'>Tokens</th><th>Share</th>"
            "<th class='num'>Model time</th><th class='num'>Cost</th></tr></thead>"
            f"<tbody>{body}</tbody></table></section>")


def _tree(tree: RunTree) -> str:
    root = tree.root
    start = root.started_at
    span = max(((root.ended_at or tree.read_at) - start).total_seconds(), 1e-3)
    rows = ["<div class='tree'><div class='tree-rows'><div class='tree-row tree-head'>"
            "<div>Step</div><div>Time line</div><div class='num'>Time</div>"
            "<div class='num'>Tokens</div><div class='num'>Cost</div></div>"]

    def walk(node: TreeNode, depth: int) -> None:
        rows.append(_row(tree, node, depth, start, span))
        for child in node.children:
            walk(child, depth + 1)

    walk(root, 0)
    ticks = "".join(f"<span style='left:{f * 100:.0f}%'>{_e(_seconds(span * f) or '0 ms')}"
                    "</span>" for f in (0, 0.25, 0.5, 0.75, 1))
    rows.append(f"</div><div class='tree-axis'><div></div><div class='ticks'>{ticks}</div>"
                "</div></div>")
    return "".join(rows)


def _row(tree: RunTree, node: TreeNode, depth: int, start: datetime, span: float) -> str:
    ended = node.ended_at or tree.read_at
    left = (node.started_at - start).total_seconds() / span * 100
    width = max((ended - node.started_at).total_seconds() / span * 100, 0.4)
    tags = []
    if node.kind != "run" and node.agent and node.agent != node.title:
        tags.append(f"<span class='tag'>{_e(node.agent)}</span>")
    if node.model and node.kind != "run":
        tags.append(f"<span class='tag model'>{_e(node.model)}</span>")
    if node.attempts > 1:
        tags.append(f"<span class='tag warn'>attempt {node.attempts}</span>")
    if node.kind == "run" or node.status != "ok":
        tags.append(_pill(node.status))
    summary = f"<div class='step-summary'>{_e(node.summary)}</div>" if node.summary else ""
    fields = ""
    if node.fields and node.kind in ("tool", "approval"):
        fields = f"<div class='step-fields inline'>{_inline_fields(node.fields)}</div>"
    cost = _usd(node.cost_usd) if node.kind in ("run", "model") else ""
    live = " live" if node.status in ("running", "waiting") else ""
    return (f"<div class='tree-row depth-{min(depth, 4)} row-{node.kind}'>"
            f"<div class='step' style='padding-left:{depth * 18}px'><span class='caret'></span>"
            f"<span class='kind kind-{node.kind}'>{KIND_LABELS[node.kind]}</span>"
            f"<div class='step-text'><div class='step-title'><strong>{_e(node.title)}</strong>"
            f"{''.join(tags)}</div>{summary}{fields}</div></div>"
            f"<div class='lane'><div class='bar bar-{node.kind} bar-{node.status}{live}' "
            f"style='left:{left:.2f}%;width:{width:.2f}%'></div></div>"
            f"<div class='num'>{_e(_seconds((ended - node.started_at).total_seconds()))}</div>"
            f"<div class='num'>{f'{node.tokens:,} tok' if node.tokens else ''}</div>"
            f"<div class='num'>{_e(cost)}</div></div>")


def _fields(value: Any) -> str:
    if isinstance(value, dict):
        return "<dl class='fields'>" + "".join(
            f"<dt>{_e(_label(str(k)))}</dt><dd>{_fields(v)}</dd>" for k, v in value.items()) \
            + "</dl>"
    if isinstance(value, list):
        return "<ul class='field-list'>" + "".join(f"<li>{_fields(v)}</li>" for v in value) \
            + "</ul>"
    if isinstance(value, str) and "\n" in value:
        return f"<div class='prose'>{_e(value)}</div>"
    if isinstance(value, bool):
        return f"<span class='bool {str(value).lower()}'>{'yes' if value else 'no'}</span>"
    return _e("—" if value is None else str(value))


def _inline_fields(value: dict[str, Any]) -> str:
    return " ".join(f"<span class='kv'><span class='k'>{_e(_label(str(k)))}</span> "
                    f"{_e(v if isinstance(v, str) else repr(v))}</span>"
                    for k, v in value.items())


def _walk(node: TreeNode) -> Iterator[TreeNode]:
    yield node
    for child in node.children:
        yield from _walk(child)


def _height(page: str) -> int:
    """The window height that shows the whole page (rows have a fixed height)."""
    rows = page.count("class='tree-row ")
    lines = sum(len(line) // 150 + 1 for line in page.split("<div class='prose'>")[1:3]
                for line in line.split("</div>", 1)[0].splitlines())
    fields = page.count("<dt>")
    agents = page.count("<tr><td><strong>")
    return min(16000, 570 + 46 * rows + 22 * lines + 26 * fields + 36 * agents)


def _pill(status: str) -> str:
    return f"<span class='pill status-{_e(status)}'>{_e(status.replace('_', ' '))}</span>"


def _label(key: str) -> str:
    words = key.replace("_", " ")
    return words[:1].upper() + words[1:]


def _seconds(s: float) -> str:
    if s < 1:
        return f"{round(s * 1000)} ms"
    if s < 60:
        return f"{s:.1f} s"
    return f"{int(s // 60)} min {round(s % 60)} s"


def _usd(cost: float | None) -> str:
    if cost is None:
        return "price unknown"
    if cost == 0:
        return "$0"
    return f"${cost:.5f}" if cost < 0.01 else f"${cost:.2f}"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)
