// Small DOM helpers shared by the views: elements built from data (never from HTML
// strings, so nothing a model wrote can run as markup), values shown as fields.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// A contract's output, a tool's arguments, a result: as labelled fields, nested
// objects as nested fields, lists as lists; never as escaped JSON.
export function fields(value, depth = 0) {
  if (value === null || value === undefined) return el("span", { class: "muted" }, "—");
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v !== "object" || v === null)) {
      return el("ul", { class: "field-list" }, value.map((v) => el("li", {}, text(v))));
    }
    return el("ol", { class: "field-list" }, value.map((v) => el("li", {}, fields(v, depth + 1))));
  }
  if (typeof value === "object") {
    return el("dl", { class: `fields depth-${Math.min(depth, 3)}` },
      Object.entries(value).map(([key, v]) => [
        el("dt", {}, label(key)),
        el("dd", {}, typeof v === "object" && v !== null ? fields(v, depth + 1) : text(v)),
      ]));
  }
  return text(value);
}

function text(value) {
  if (typeof value === "string" && value.includes("\n")) return el("div", { class: "prose" }, value);
  if (typeof value === "boolean") return el("span", { class: `bool ${value}` }, value ? "yes" : "no");
  return String(value);
}

export function label(key) {
  const words = key.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function pill(status) {
  return el("span", { class: `pill status-${status}` }, (status ?? "unknown").replace(/_/g, " "));
}

export function usd(cost) {
  if (cost === null || cost === undefined) return "price unknown";
  if (cost === 0) return "$0";
  return cost < 0.01 ? `$${cost.toFixed(5)}` : `$${cost.toFixed(2)}`;
}

export function tokens(n) {
  return n >= 10000 ? `${(n / 1000).toFixed(1)}k tok` : `${n ?? 0} tok`;
}

export function seconds(s) {
  if (s === null || s === undefined) return "";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`;
}

export function ago(iso) {
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

export function externalLink(href, text) {
  return el("a", { href, target: "_blank", rel: "noopener", class: "external" }, text, " ↗");
}
