// Building elements (text only, never HTML strings) and formatting values for display.

/** A new element; `text` sets its text, other attributes are set as given. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = String(value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

/** Show `message` in `node`, or hide it when there is none. */
export function showMessage(node, message) {
  node.textContent = message || "";
  node.hidden = !message;
}

export const TERMINAL = new Set(["done", "failed", "canceled"]);
export const ACTIVE = new Set(["queued", "running"]);

export function badge(status) {
  const known = ["queued", "running", "done", "failed", "canceled"].includes(status);
  return el("span", { class: `badge badge-${known ? status : "queued"}`, text: status });
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

function parse(iso) {
  const moment = iso ? new Date(iso) : null;
  return moment && !Number.isNaN(moment.getTime()) ? moment : null;
}

/** Local date and time, e.g. 2026-11-28 14:03:09. */
export function formatTime(iso) {
  const d = parse(iso);
  if (!d) return iso || "—";
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Local time of day, e.g. 14:03:09. */
export function formatTimeOfDay(iso) {
  const d = parse(iso);
  if (!d) return iso || "—";
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Local time of day with milliseconds, for log lines. */
export function formatClock(iso) {
  const d = parse(iso);
  if (!d) return "";
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
    + `.${pad(d.getMilliseconds(), 3)}`;
}

/** Milliseconds from start to finish (or to `now` while running), or null before the start. */
export function durationOf(task, now) {
  const started = parse(task.started_at);
  if (!started) return null;
  const finished = parse(task.finished_at);
  return Math.max(0, (finished ? finished.getTime() : now) - started.getTime());
}

/** A duration in words; a running one in whole seconds, so that it steps once a tick. */
export function formatDuration(ms, running = false) {
  if (ms === null || ms === undefined) return "—";
  if (running && ms < 60_000) return `${Math.floor(ms / 1000)} s`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 3600) return `${Math.floor(seconds / 60)} m ${seconds % 60} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} m`;
}
