// A run's tree (GET /api/runs/{id}/tree, computed by baton/web/tree.py) drawn as rows
// with a time line: the same rows and classes as the HTML report (baton/web/report.py).

import { el, fields, pill, seconds, tokens, usd, externalLink } from "./ui.js";

const KIND_LABELS = {
  run: "run", model: "model", tool: "tool", guardrail: "guard", check: "check",
  approval: "approval", wait: "wait",
};

export function renderTree(tree, { collapsed = new Set(), onToggle } = {}) {
  const root = tree.root;
  const start = Date.parse(root.started_at);
  const end = Date.parse(root.ended_at ?? tree.read_at);
  const span = Math.max(end - start, 1);
  const rows = el("div", { class: "tree-rows" });
  const header = el("div", { class: "tree-row tree-head" },
    el("div", {}, "Step"), el("div", {}, "Time line"), el("div", { class: "num" }, "Time"),
    el("div", { class: "num" }, "Tokens"), el("div", { class: "num" }, "Cost"));
  rows.append(header);
  const walk = (node, depth) => {
    rows.append(row(node, depth, { start, span, tree, collapsed, onToggle }));
    if (!collapsed.has(node.id)) node.children.forEach((child) => walk(child, depth + 1));
  };
  walk(root, 0);
  return el("div", { class: "tree" }, rows, axis(span));
}

function row(node, depth, { start, span, tree, collapsed, onToggle }) {
  const began = Date.parse(node.started_at);
  const ended = node.ended_at ? Date.parse(node.ended_at) : Date.parse(tree.read_at);
  const left = ((began - start) / span) * 100;
  const width = Math.max(((ended - began) / span) * 100, 0.4);
  const duration = (ended - began) / 1000;
  const open = node.status === "running" || node.status === "waiting";
  const hasChildren = node.children.length > 0;
  const caret = hasChildren
    ? el("button", { class: "caret", "aria-label": "toggle", onclick: () => onToggle?.(node.id) },
      collapsed.has(node.id) ? "▸" : "▾")
    : el("span", { class: "caret" });
  const link = node.workflow_id && tree.links[node.workflow_id];
  const name = el("div", { class: "step", style: `padding-left:${depth * 18}px` },
    caret,
    el("span", { class: `kind kind-${node.kind}` }, KIND_LABELS[node.kind] ?? node.kind),
    el("div", { class: "step-text" },
      el("div", { class: "step-title" },
        el("strong", {}, node.title),
        node.kind !== "run" && node.agent && node.agent !== node.title
          ? el("span", { class: "tag" }, node.agent) : null,
        node.model && node.kind !== "run" ? el("span", { class: "tag model" }, node.model) : null,
        node.attempts > 1 ? el("span", { class: "tag warn" }, `attempt ${node.attempts}`) : null,
        node.kind === "run" || node.status !== "ok" ? pill(node.status) : null,
        link ? externalLink(link, "history") : null),
      node.summary ? el("div", { class: "step-summary" }, node.summary) : null,
      node.fields ? el("details", { class: "step-fields" },
        el("summary", {}, node.kind === "tool" || node.kind === "approval" ? "arguments" : "output"),
        fields(node.fields)) : null));
  const bar = el("div", { class: "lane" },
    el("div", {
      class: `bar bar-${node.kind} bar-${node.status}${open ? " live" : ""}`,
      style: `left:${left}%;width:${width}%`,
      title: `${seconds(duration)} from +${seconds((began - start) / 1000)}`,
    }));
  return el("div", { class: `tree-row depth-${Math.min(depth, 4)} row-${node.kind}`, "data-node": node.id },
    name, bar,
    el("div", { class: "num" }, seconds(duration)),
    el("div", { class: "num" }, node.input_tokens + node.output_tokens ? tokens(node.input_tokens + node.output_tokens) : ""),
    el("div", { class: "num" }, node.kind === "run" || node.kind === "model" ? usd(node.cost_usd) : ""));
}

function axis(spanMs) {
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) =>
    el("span", { style: `left:${f * 100}%` }, seconds((spanMs * f) / 1000) || "0 ms"));
  return el("div", { class: "tree-axis" }, el("div"), el("div", { class: "ticks" }, ticks));
}
