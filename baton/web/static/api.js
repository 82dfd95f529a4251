// Talking to `serve`: JSON calls with the bearer token, and AG-UI event streams read
// with fetch (EventSource cannot send a token), resumed with Last-Event-ID.

const TOKEN_KEY = "baton-token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers(extra = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export async function api(path, { method = "GET", body } = {}) {
  const response = await fetch(path, {
    method,
    headers: headers(body ? { "Content-Type": "application/json" } : {}),
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new ApiError(response.status, data.error?.message ?? response.statusText);
  }
  return data;
}

// Calls onEvent(event) for every AG-UI event of a run until it finishes or `signal`
// aborts; reconnects after a dropped connection from the last event id it saw.
export async function follow(runId, onEvent, { signal, retryUntil } = {}) {
  let lastId = null;
  for (let attempt = 0; !signal?.aborted; attempt++) {
    let response;
    try {
      response = await fetch(`/api/runs/${runId}/events`, {
        headers: headers(lastId ? { "Last-Event-ID": lastId } : {}),
        signal,
      });
    } catch (err) {
      if (signal?.aborted) return;
      await sleep(500);
      continue;
    }
    if (response.status === 404 && retryUntil && retryUntil()) {
      await sleep(250); // the run (a session's first turn) is being started
      continue;
    }
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      throw new ApiError(response.status, data.error?.message ?? response.statusText);
    }
    try {
      for await (const { id, data } of sseEvents(response.body)) {
        if (id) lastId = id;
        const event = JSON.parse(data);
        onEvent(event);
        if (event.type === "RUN_FINISHED" || event.type === "RUN_ERROR") return;
      }
    } catch (err) {
      if (signal?.aborted) return;
    }
    await sleep(300);
  }
}

async function* sseEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let id = null;
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("id: ")) id = line.slice(4);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      if (data.length) yield { id, data: data.join("\n") };
    }
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
