// Runs: start one, find them by team and status, and open one as a live tree.

import { api, sleep } from "./api.js";
import { renderTree } from "./tree.js";
import { ago, el, externalLink, fields, pill, tokens, usd } from "./ui.js";

const STATUSES = ["", "running", "waiting_approval", "ok", "degraded", "budget_exhausted", "blocked", "failed"];
let view = 0; // bumped on every navigation: a stale poller stops

export async function showRuns(main) {
  const mine = ++view;
  const catalogue = await api("/api/catalogue");
  const members = [...catalogue.teams, ...catalogue.agents, ...catalogue.flows].map((m) => m.name);
  const member = el("select", { id: "run-member", "aria-label": "team, agent or flow" },
    members.map((m) => el("option", { value: m, selected: m === "research_panel" }, m)));
  const prompt = el("input", { id: "run-prompt", placeholder: "What should it do?", class: "grow" });
  const start = async () => {
    if (!prompt.value.trim()) return prompt.focus();
    try {
      const run = await api("/api/runs", { method: "POST", body: { member: member.value, prompt: prompt.value } });
      location.hash = `#/runs/${run.workflow_id}`;
    } catch (err) {
      form.append(el("div", { class: "error-box" }, err.message));
    }
  };
  const form = el("div", { class: "card start-run" },
    el("div", { class: "row" }, member, prompt, el("button", { class: "primary", id: "run-start", onclick: start }, "Start run")));
  const team = el("select", { "aria-label": "team" }, el("option", { value: "" }, "any team"),
    [...catalogue.teams, ...catalogue.agents].map((m) => el("option", { value: m.name }, m.name)));
  const status = el("select", { "aria-label": "status" },
    STATUSES.map((s) => el("option", { value: s }, s ? s.replace(/_/g, " ") : "any status")));
  const table = el("div", { class: "card runs-table" });
  main.replaceChildren(
    el("header", { class: "view-head" }, el("h1", {}, "Runs"),
      el("div", { class: "head-tools" }, team, status)),
    form, table);
  team.onchange = status.onchange = () => refresh();
  const refresh = async () => {
    const query = new URLSearchParams({ limit: "30" });
    if (team.value) query.set("team", team.value);
    if (status.value) query.set("status", status.value);
    try {
      const { runs } = await api(`/api/runs?${query}`);
      table.replaceChildren(runsTable(runs));
    } catch (err) {
      table.replaceChildren(el("div", { class: "error-box" }, err.message));
    }
  };
  while (mine === view) {
    await refresh();
    await sleep(3000);
  }
}

function runsTable(runs) {
  if (!runs.length) return el("p", { class: "muted empty" }, "No runs yet.");
  return el("table", {},
    el("thead", {}, el("tr", {}, ["Run", "Team", "Status", "Tokens", "Cost", "Started"].map((h) => el("th", {}, h)))),
    el("tbody", {}, runs.map((r) => el("tr", { onclick: () => { location.hash = `#/runs/${r.workflow_id}`; } },
      el("td", {}, el("a", { href: `#/runs/${r.workflow_id}` }, r.workflow_id)),
      el("td", {}, r.team ?? "—", el("span", { class: "muted" }, r.pattern ? ` · ${r.pattern}` : "")),
      el("td", {}, pill(r.status)),
      el("td", { class: "num" }, r.tokens === null ? "—" : tokens(r.tokens)),
      el("td", { class: "num" }, r.tokens === null ? "—" : usd(r.cost_usd)),
      el("td", { class: "muted" }, ago(r.start_time))))));
}

export async function showRun(main, runId) {
  const mine = ++view;
  const collapsed = new Set();
  const head = el("header", { class: "view-head" });
  const summary = el("div", { class: "run-summary" });
  const treeBox = el("div", { class: "card tree-card", id: "run-tree" });
  main.replaceChildren(head, summary, treeBox);
  let tree = null;
  const draw = () => {
    treeBox.replaceChildren(renderTree(tree, {
      collapsed, onToggle: (id) => { collapsed.has(id) ? collapsed.delete(id) : collapsed.add(id); draw(); },
    }));
  };
  while (mine === view) {
    try {
      tree = await api(`/api/runs/${runId}/tree`);
    } catch (err) {
      treeBox.replaceChildren(el("div", { class: "error-box" }, err.message));
      return;
    }
    const root = tree.root;
    head.replaceChildren(
      el("div", {},
        el("a", { href: "#/runs", class: "back" }, "← Runs"),
        el("h1", {}, root.title, " ", pill(root.status)),
        el("div", { class: "muted mono" }, runId)),
      el("div", { class: "head-tools" },
        el("span", { class: "stat" }, tokens(root.input_tokens + root.output_tokens)),
        el("span", { class: "stat" }, usd(root.cost_usd)),
        tree.links[runId] ? externalLink(tree.links[runId], "Temporal Web UI") : null));
    summary.replaceChildren(...[
      root.status === "waiting" ? el("div", { class: "card notice" }, "This run waits for a person: ",
        el("a", { href: "#/approvals" }, "open the approvals inbox")) : null,
      tree.answer || tree.output || tree.error ? el("div", { class: "card answer" },
        el("h2", {}, tree.error ? "Error" : "Answer"),
        tree.error ? el("div", { class: "error-box" }, tree.error) : null,
        tree.output ? fields(tree.output) : el("div", { class: "prose" }, tree.answer ?? "")) : null,
    ].filter(Boolean));
    draw();
    if (root.ended_at) return;
    await sleep(1000);
  }
}
