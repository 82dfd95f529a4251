// Approvals inbox: every request a run waits on, with its arguments and the policy's
// reason; approve with a note or reject with a reason.

import { api, sleep } from "./api.js";
import { ago, el, externalLink, fields, seconds } from "./ui.js";

let view = 0;

export async function showApprovals(main) {
  const mine = ++view;
  const list = el("div", { class: "inbox", id: "inbox" });
  main.replaceChildren(el("header", { class: "view-head" }, el("h1", {}, "Approvals"),
    el("div", { class: "muted" }, "Requests that wait for a person, oldest first")), list);
  const drafts = new Map(); // what a person typed survives each refresh
  while (mine === view) {
    try {
      const { runs } = await api("/api/approvals");
      const cards = runs.flatMap((run) => run.requests.map((r) => card(run, r, drafts, () => refreshSoon())));
      list.replaceChildren(...(cards.length ? cards
        : [el("div", { class: "card empty" }, el("div", { class: "big" }, "Nothing waits for you"),
          el("p", { class: "muted" }, "Runs that need a decision appear here."))]));
    } catch (err) {
      list.replaceChildren(el("div", { class: "error-box" }, err.message));
    }
    await Promise.race([sleep(2000), new Promise((r) => { refreshSoon = r; })]);
  }
}

let refreshSoon = () => {};

function card(run, request, drafts, done) {
  const key = `${request.workflow_id}/${request.request_id}`;
  const text = el("input", {
    class: "note-input", placeholder: "A note (approving) or the reason (rejecting)",
    value: drafts.get(key) ?? "", oninput: (e) => drafts.set(key, e.target.value),
  });
  const problem = el("div", { class: "error-box", hidden: true });
  const decide = async (approve) => {
    if (!approve && !text.value.trim()) {
      problem.hidden = false;
      problem.textContent = "Say why you reject it: the agent is told the reason.";
      return text.focus();
    }
    try {
      await api(`/api/runs/${request.workflow_id}/decisions`, {
        method: "POST",
        body: { request_id: request.request_id, approve, note: approve ? text.value : "", reason: approve ? "" : text.value },
      });
      drafts.delete(key);
      done();
    } catch (err) {
      problem.hidden = false;
      problem.textContent = err.message;
    }
  };
  const deadline = Date.parse(request.asked_at) + request.timeout_s * 1000;
  return el("article", { class: "card request", "data-request": request.request_id },
    el("header", {},
      el("div", {},
        el("div", { class: "request-title" }, el("span", { class: "kind kind-approval" }, request.kind),
          el("strong", {}, request.subject), el("span", { class: "muted" }, ` asked by ${request.agent}`)),
        el("div", { class: "muted small" },
          el("a", { href: `#/runs/${run.workflow_id}` }, run.workflow_id),
          request.workflow_id !== run.workflow_id ? ` › ${request.workflow_id.slice(run.workflow_id.length + 1)}` : "",
          ` · asked ${ago(request.asked_at)}`)),
      externalLink(run.link, "Temporal")),
    el("div", { class: "why" }, request.why),
    el("div", { class: "args-box" }, fields(request.arguments)),
    el("div", { class: "muted small" },
      `If nobody decides within ${seconds(Math.max(0, (deadline - Date.now()) / 1000))}: ${request.default}.`),
    problem,
    el("div", { class: "actions" }, text,
      el("button", { class: "approve", onclick: () => decide(true) }, "Approve"),
      el("button", { class: "reject", onclick: () => decide(false) }, "Reject")));
}
