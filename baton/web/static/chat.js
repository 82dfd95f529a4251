// Chat: talk to a team or agent (a session: one update-with-start per turn) or run a
// flow, and watch the answer arrive token by token from the run's AG-UI stream.

import { api, follow } from "./api.js";
import { el, fields, pill, tokens, usd, externalLink } from "./ui.js";

const state = {
  catalogue: null,
  member: null,       // {name, kind: "team" | "agent" | "flow"}
  sessionId: null,
  following: null,    // AbortController of the session's event stream
  turn: null,         // the turn being answered: its DOM and its messages
  log: null,          // the conversation's element (kept across view switches)
};

export async function showChat(main) {
  state.catalogue ??= await api("/api/catalogue");
  state.log ??= el("div", { class: "chat-log", id: "chat-log" });
  if (!state.member) pick(defaultMember());
  if (!state.log.childElementCount) state.log.append(emptyHint());
  const input = el("textarea", {
    id: "chat-input", rows: 2, placeholder: "Write a message… (Enter sends, Shift+Enter for a new line)",
    onkeydown: (e) => {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); submit(); }
    },
  });
  const send = el("button", { class: "primary", id: "chat-send", onclick: () => submit() }, "Send");
  const submit = () => {
    const text = input.value.trim();
    if (!text || state.turn) return;
    input.value = "";
    sendTurn(text).catch((err) => failTurn(err));
  };
  main.replaceChildren(
    el("header", { class: "view-head" },
      el("h1", {}, "Chat"),
      el("div", { class: "head-tools" }, memberSelect(), el("button", {
        class: "ghost", onclick: () => { pick(state.member); showChat(main); },
      }, "New conversation"))),
    el("section", { class: "chat" },
      state.log,
      el("div", { class: "composer" }, input, send)));
  input.focus();
}

function emptyHint() {
  const member = state.member;
  const about = describe(member);
  return el("div", { class: "chat-empty", id: "chat-empty" },
    el("div", { class: "chat-empty-title" }, `Talk to ${member.name}`),
    about ? el("p", { class: "muted" }, about) : null);
}

function describe(member) {
  const list = { team: "teams", agent: "agents", flow: "flows" }[member.kind];
  const entry = state.catalogue[list].find((m) => m.name === member.name);
  if (!entry) return "";
  if (member.kind === "team") return `${entry.pattern} team: ${entry.members.join(", ")}. ${entry.description}`;
  if (member.kind === "flow") return `flow (${entry.parameters}). ${entry.description}`;
  return `agent on ${entry.model}. ${entry.description}`;
}

function defaultMember() {
  const teams = state.catalogue.teams;
  const preferred = teams.find((t) => t.name === "support_desk") ?? teams[0];
  if (preferred) return { name: preferred.name, kind: "team" };
  return { name: state.catalogue.agents[0].name, kind: "agent" };
}

function memberSelect() {
  const groups = [["team", "Teams", state.catalogue.teams], ["agent", "Agents", state.catalogue.agents],
    ["flow", "Flows", state.catalogue.flows]];
  const select = el("select", {
    id: "chat-member", "aria-label": "who to talk to",
    onchange: (e) => {
      const [kind, name] = e.target.value.split(":");
      pick({ kind, name });
      showChat(document.getElementById("main"));
    },
  }, groups.filter(([, , items]) => items.length).map(([kind, title, items]) =>
    el("optgroup", { label: title }, items.map((m) => el("option", {
      value: `${kind}:${m.name}`, selected: state.member.kind === kind && state.member.name === m.name,
    }, m.name)))));
  return select;
}

function pick(member) {
  state.following?.abort();
  state.following = null;
  state.member = member;
  state.sessionId = `web-${crypto.randomUUID().slice(0, 8)}`;
  state.turn = null;
  state.log = el("div", { class: "chat-log", id: "chat-log" });
}

async function sendTurn(text) {
  document.getElementById("chat-empty")?.remove();
  state.log.append(el("div", { class: "msg user" }, el("div", { class: "bubble" }, text)));
  const turn = newTurn();
  if (state.member.kind === "flow") {
    const started = await api("/api/runs", { method: "POST", body: { member: state.member.name, prompt: text } });
    turn.runId = started.workflow_id;
    await follow(started.workflow_id, (event) => onEvent(event, turn));
    return;
  }
  const sessionRun = `session-${state.sessionId}`;
  if (!state.following) {
    const controller = new AbortController();
    state.following = controller;
    follow(sessionRun, (event) => state.turn && onEvent(event, state.turn), {
      signal: controller.signal, retryUntil: () => state.turn !== null,
    }).catch(() => {});
  }
  const answer = await api(`/api/sessions/${state.sessionId}/turns`, {
    method: "POST", body: { member: state.member.name, message: text },
  });
  finishTurn(turn, {
    status: answer.status, answer: answer.answer, output: answer.output,
    handledBy: answer.handled_by, usage: Object.values(answer.usage ?? {}),
    runId: answer.workflow_id, link: answer.link,
  });
}

function newTurn() {
  const body = el("div", { class: "turn-body" });
  const thinking = el("div", { class: "thinking" }, el("span", { class: "dots" }), "working");
  const node = el("div", { class: "msg assistant" }, el("div", { class: "bubble" }, body, thinking));
  state.log.append(node);
  scroll();
  const turn = { node, body, thinking, messages: new Map(), calls: new Map(), approvals: new Map(), streamed: false };
  state.turn = turn;
  return turn;
}

function onEvent(event, turn) {
  switch (event.type) {
    case "TEXT_MESSAGE_START": {
      const text = el("div", { class: "text streaming" });
      const part = el("div", { class: "part" }, el("div", { class: "who" }, event.name ?? "assistant"), text);
      turn.body.append(part);
      turn.messages.set(event.messageId, text);
      break;
    }
    case "TEXT_MESSAGE_CONTENT": {
      const text = turn.messages.get(event.messageId);
      if (text) { text.textContent += event.delta; turn.streamed = true; }
      break;
    }
    case "TEXT_MESSAGE_END":
      turn.messages.get(event.messageId)?.classList.remove("streaming");
      break;
    case "TOOL_CALL_START": {
      const chip = el("div", { class: "chip tool" }, el("b", {}, event.toolCallName), el("span", { class: "args" }));
      turn.calls.set(event.toolCallId, chip);
      turn.body.append(chip);
      break;
    }
    case "TOOL_CALL_ARGS": {
      const chip = turn.calls.get(event.toolCallId);
      if (chip) chip.querySelector(".args").textContent += argsText(event.delta);
      break;
    }
    case "TOOL_CALL_RESULT": {
      const chip = turn.calls.get(event.toolCallId);
      if (chip) chip.append(el("span", { class: "result" }, `→ ${event.content}`));
      break;
    }
    case "CUSTOM":
      custom(event, turn);
      break;
    case "RUN_FINISHED":
      if (turn.runId) {
        const result = event.result ?? {};
        finishTurn(turn, { status: result.status, answer: result.answer, output: result.value ?? result.output,
          usage: Object.values(result.usage ?? {}), runId: turn.runId });
      }
      break;
    case "RUN_ERROR":
      if (turn.runId) failTurn(new Error(event.message));
      break;
  }
  scroll();
}

function custom(event, turn) {
  const value = event.value;
  if (event.name === "baton.handoff") {
    turn.body.append(el("div", { class: "chip handoff" }, el("b", {}, `${value.agent} → ${value.to}`),
      value.reason ? el("span", { class: "args" }, value.reason) : null));
  } else if (event.name === "baton.attempt_restarted") {
    const text = turn.messages.get(value.message_id);
    if (text) {
      text.textContent = "";
      text.parentElement.append(el("div", { class: "note warn" }, `retrying: ${value.reason || "the attempt failed"}`));
    }
  } else if (event.name === "baton.approval_requested") {
    const card = approvalCard(value);
    turn.approvals.set(value.request_id, card);
    turn.body.append(card);
  } else if (event.name === "baton.approval_decided") {
    const card = turn.approvals.get(value.request_id);
    card?.replaceWith(el("div", { class: `chip ${value.approved ? "approved" : "rejected"}` },
      el("b", {}, value.approved ? "approved" : "rejected"), el("span", { class: "args" }, value.detail)));
  } else if (event.name === "baton.guardrail_tripped") {
    turn.body.append(el("div", { class: "chip blocked" }, el("b", {}, "guardrail"), el("span", { class: "args" }, value.detail)));
  }
}

function approvalCard(value) {
  const note = el("input", { placeholder: "note (optional)", class: "note-input" });
  const decide = async (approve) => {
    const body = approve ? { approve, note: note.value, request_id: value.request_id }
      : { approve, reason: note.value || "rejected in the console", request_id: value.request_id };
    await api(`/api/runs/${value.workflow_id}/decisions`, { method: "POST", body });
  };
  return el("div", { class: "approval-inline" },
    el("div", { class: "approval-title" }, "Waiting for your approval: ", el("b", {}, value.subject)),
    typeof value.arguments === "object" ? fields(value.arguments) : el("code", {}, String(value.arguments)),
    el("div", { class: "muted small" }, value.why),
    el("div", { class: "actions" }, note,
      el("button", { class: "approve", onclick: () => decide(true) }, "Approve"),
      el("button", { class: "reject", onclick: () => decide(false) }, "Reject")));
}

function finishTurn(turn, { status, answer, output, handledBy, usage = [], runId, link }) {
  if (state.turn !== turn) return;
  turn.thinking.remove();
  if (!turn.streamed && answer) {
    turn.body.append(el("div", { class: "part" },
      el("div", { class: "who" }, handledBy ?? state.member.name), el("div", { class: "text" }, answer)));
  }
  if (output && typeof output === "object") {
    turn.body.append(el("div", { class: "output" }, fields(output)));
  }
  const spent = usage.reduce((a, u) => ({
    tokens: a.tokens + (u.input_tokens ?? 0) + (u.output_tokens ?? 0),
    cost: a.cost === null || u.cost_usd === null ? null : a.cost + (u.cost_usd ?? 0),
  }), { tokens: 0, cost: 0 });
  turn.node.append(el("div", { class: "turn-foot" },
    pill(status ?? "ok"), handledBy ? el("span", {}, `answered by ${handledBy}`) : null,
    el("span", {}, tokens(spent.tokens)), el("span", {}, usd(spent.cost)),
    runId ? el("a", { href: `#/runs/${runId}` }, "run tree") : null,
    link ? externalLink(link, "Temporal") : null));
  state.turn = null;
  scroll();
}

function failTurn(err) {
  const turn = state.turn;
  if (!turn) return;
  turn.thinking.remove();
  turn.body.append(el("div", { class: "error-box" }, err.message));
  state.turn = null;
}

function argsText(delta) {
  try {
    const args = JSON.parse(delta);
    if (args && typeof args === "object") {
      return Object.entries(args).map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ");
    }
  } catch { /* a plain text argument list */ }
  return delta;
}

function scroll() {
  const log = state.log;
  if (log) log.scrollTop = log.scrollHeight;
}
