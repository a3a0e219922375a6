// A task's details in words: its status, what ran it (the runner, the recipe and its
// parameters, or the model), its notes, who created (and canceled) it, the task it runs
// again, its concurrency group and the task it waits for, and its times.

import { durationElement } from "./clock.js";
import { label, valueText } from "./events.js";
import { TERMINAL, badge, el, formatTime } from "./format.js";

// Fields shown in this order; any other field of the task follows, labelled in words.
const KNOWN_FIELDS = new Set([
  "id", "title", "body", "status", "runner", "created_at", "started_at", "finished_at", "error",
  "cancel_requested", "recipe", "params", "model", "created_by", "canceled_by",
  "relaunched_from", "concurrency_group", "waiting_for",
]);

/** The runner in words. */
export function runnerText(task) {
  switch (task.runner) {
    case "dev":
      return task.recipe
        ? "Dev runner (dev mode runs every task this way: the recipe was checked, not run)"
        : "Dev runner (dev mode's stand-in: a few ticks, then done)";
    case "recipe":
      return "Recipe runner (runs the command its recipe declares)";
    case "llm":
      return "Language model (the title and notes are its prompt)";
    default:
      return task.runner ?? "—";
  }
}

/** The parameters, one "name = value" a line. */
function paramsText(params) {
  if (!params || typeof params !== "object") return valueText(params);
  const entries = Object.entries(params);
  return entries.length ? entries.map(([name, value]) => `${name} = ${valueText(value)}`)
    .join("\n") : "none";
}

/** The task's details as [label, value] pairs, a value being text or an element. */
export function detailRows(task) {
  const rows = [["Status", badge(task.status)], ["Runner", runnerText(task)]];
  if (task.recipe) rows.push(["Recipe", task.recipe]);
  if (task.params) rows.push(["Parameters", paramsText(task.params)]);
  if (task.model) rows.push(["Model", task.model]);
  if (task.error) rows.push(["Reason", task.error]);
  if (task.cancel_requested && !TERMINAL.has(task.status)) rows.push(["Cancel", "requested"]);
  if (task.body) rows.push(["Notes", task.body]);
  if (task.created_by) rows.push(["Created by", task.created_by]);
  if (task.canceled_by) rows.push(["Canceled by", task.canceled_by]);
  if (task.relaunched_from) {
    rows.push(["Run again from", el("a", {
      href: `#/tasks/${task.relaunched_from}`, text: `Task #${task.relaunched_from}` })]);
  }
  if (task.concurrency_group) rows.push(["Concurrency group", task.concurrency_group]);
  if (task.waiting_for !== null && task.waiting_for !== undefined) {
    rows.push(["Waiting for", el("a", {
      href: `#/tasks/${task.waiting_for}`, text: `task #${task.waiting_for}`,
      title: "It starts once this task has ended and given its concurrency group back",
    })]);
  }
  rows.push(
    ["Created", formatTime(task.created_at)],
    ["Started", formatTime(task.started_at)],
    ["Finished", formatTime(task.finished_at)],
    ["Duration", durationElement(task)],
  );
  for (const [name, value] of Object.entries(task)) {
    if (KNOWN_FIELDS.has(name) || value === null || value === undefined) continue;
    rows.push([label(name), valueText(value)]);
  }
  return rows;
}

/** The rows as the children of a <dl>. */
export function detailNodes(task) {
  return detailRows(task).flatMap(([name, value]) => [
    el("dt", { text: name }), el("dd", {}, value)]);
}
