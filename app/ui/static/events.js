// Events and results in words: what the event log shows for each kind, a result's fields
// labelled ("Exit code 0") rather than its JSON.

import { el } from "./format.js";

const LABELS = {
  exit_code: "Exit code",
  stopped_with: "Stopped with",
  stopped_leftovers: "Leftover processes stopped with",
  output_cut: "Output cut short",
  lines: "Lines",
  skipped_lines: "Lines left out",
  skipped_bytes: "Bytes left out",
  max_lines: "Line limit",
  timeout: "Time limit",
  http_status: "HTTP status",
  chars: "Characters",
  model: "Model",
  finish_reason: "Finish reason",
  prompt_tokens: "Prompt tokens",
  completion_tokens: "Answer tokens",
  total_tokens: "Total tokens",
  ticks: "Ticks",
  runner: "Runner",
  recipe: "Recipe",
  params: "Parameters",
};
const UNITS = { timeout: " s", skipped_bytes: " bytes" };
const FLATTEN = new Set(["log", "usage"]); // their fields are shown as the result's own
// Shown elsewhere: the answer's text in its own block, the reason as the line's text.
const UNSHOWN = new Set(["text", "text_events", "reason", "body", "message"]);
const MAX_TEXT = 4000;

/** A field name in words: a known one's label, else "some_field" as "Some field". */
export function label(name) {
  if (LABELS[name]) return LABELS[name];
  const words = String(name).replaceAll("_", " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** A value as text: numbers grouped, yes/no, lists joined, tables as "name = value". */
export function valueText(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "number") return value.toLocaleString("en");
  if (Array.isArray(value)) return value.map(valueText).join(", ");
  if (typeof value === "object") {
    return Object.entries(value).map(([name, item]) => `${name} = ${valueText(item)}`).join(", ");
  }
  const text = String(value);
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text;
}

/** The fields of an event's data as [label, text] pairs, nested counts flattened. */
export function fields(data, skip = UNSHOWN) {
  const found = [];
  for (const [name, value] of Object.entries(data)) {
    if (skip.has(name) || value === null || value === undefined) continue;
    if (FLATTEN.has(name) && value && typeof value === "object" && !Array.isArray(value)) {
      found.push(...fields(value, skip));
    } else {
      found.push([label(name), valueText(value) + (UNITS[name] ?? "")]);
    }
  }
  return found;
}

/** Labelled fields as nodes: "Exit code 0 · Lines 12", the labels set apart. */
function fieldNodes(pairs) {
  return pairs.flatMap(([name, text], index) => [
    index ? " · " : null,
    el("span", { class: "field" }, el("span", { class: "field-name", text: name }), ` ${text}`),
  ]).filter(Boolean);
}

/** `head`, then the fields after a separator when there are any. */
function withFields(head, data) {
  const pairs = fields(data);
  return pairs.length ? [head, " · ", ...fieldNodes(pairs)] : [head];
}

/** What the event log shows for `event`: text and labelled fields (strings and nodes). */
export function describeEvent(event) {
  const data = event.data && typeof event.data === "object" ? event.data : {};
  switch (event.kind) {
    case "created":
      return withFields("task created", data);
    case "status":
      return [`status: ${data.status ?? "?"}`];
    case "tick":
      return [`tick ${data.n ?? ""}`.trim()];
    case "waiting":
      return [data.waiting_for === null || data.waiting_for === undefined
        ? `waits no more for group ${data.concurrency_group ?? "?"}`
        : `waiting for task #${data.waiting_for} to give back group `
          + `${data.concurrency_group ?? "?"}`];
    case "done":
      return withFields("finished", data);
    case "failed":
    case "canceled":
      return withFields(`${event.kind}: ${valueText(data.reason ?? "no reason given")}`, data);
    default:
      return typeof data.message === "string" ? withFields(data.message, data)
        : fieldNodes(fields(data));
  }
}
