// The console's entry: configuration, the token prompt, and the views by URL hash
// (#/chat, #/runs, #/runs/<workflow id>, #/approvals).

import { api, ApiError, setToken, sleep } from "./api.js";
import { showApprovals } from "./approvals.js";
import { showChat } from "./chat.js";
import { showRun, showRuns } from "./runs.js";
import { el } from "./ui.js";

const main = document.getElementById("main");

async function route() {
  const hash = decodeURIComponent(location.hash.replace(/^#\/?/, "")) || "chat";
  const [view, ...rest] = hash.split("/");
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.view === view);
  }
  try {
    if (view === "runs" && rest.length) await showRun(main, rest.join("/"));
    else if (view === "runs") await showRuns(main);
    else if (view === "approvals") await showApprovals(main);
    else await showChat(main);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return askToken();
    main.replaceChildren(el("div", { class: "error-box" }, err.message));
  }
}

async function askToken() {
  const dialog = document.getElementById("token-dialog");
  dialog.showModal();
  dialog.addEventListener("close", () => {
    setToken(document.getElementById("token-input").value.trim());
    route();
  }, { once: true });
}

async function countApprovals() {
  const badge = document.getElementById("approval-count");
  while (true) {
    try {
      const { runs } = await api("/api/approvals");
      const count = runs.reduce((n, r) => n + r.requests.length, 0);
      badge.hidden = count === 0;
      badge.textContent = String(count);
    } catch { /* shown by the view that fails */ }
    await sleep(3000);
  }
}

async function start() {
  const config = await api("/api/config");
  const ui = document.getElementById("temporal-ui");
  ui.href = `${config.temporal_ui}/namespaces/${config.namespace}/workflows`;
  document.getElementById("namespace").textContent = `namespace ${config.namespace}`;
  window.addEventListener("hashchange", route);
  await route();
  countApprovals();
}

start();
