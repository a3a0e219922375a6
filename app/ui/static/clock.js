// One clock for every duration on the page.
//
// A duration counts from the server's timestamps, so "now" must be the server's time, which
// this browser's clock may not agree with. Each API answer bounds the difference: its Date
// header (whole seconds) was written between the request's start and the answer's arrival,
// and every timestamp the server sends is a moment it had already reached. The page corrects
// its clock only as far as those bounds demand. One tick a second then moves every running
// duration on the page (the list's and the open task's) to the same moment, so they agree.

import { durationOf, el, formatDuration } from "./format.js";

const TICK_MS = 1_000;
let lower = -Infinity; // the server's clock minus this browser's is at least this (ms)...
let upper = Infinity; // ...and at most this
let shown = null; // the server time every duration on the page is shown at
let timer = null;

function offset() {
  if (lower > upper) return lower; // the bounds disagree: a duration is never negative
  return Math.min(Math.max(0, lower), upper);
}

/** The server's time now, as far as this page can tell (milliseconds since the epoch). */
export function serverNow() {
  return Date.now() + offset();
}

/** Take in an answer's Date header, for a request sent at `sentAt` (this browser's clock). */
export function observeAnswer(dateHeader, sentAt, receivedAt = Date.now()) {
  const date = Date.parse(dateHeader ?? "");
  if (Number.isNaN(date)) return;
  lower = Math.max(lower, date - receivedAt);
  upper = Math.min(upper, date + 1_000 - sentAt);
}

/** Take in timestamps (ISO) the server has just sent: it had reached each of them. */
export function observeStamps(...stamps) {
  const receivedAt = Date.now();
  for (const stamp of stamps) {
    const moment = Date.parse(stamp ?? "");
    if (!Number.isNaN(moment)) lower = Math.max(lower, moment - receivedAt);
  }
}

function paint(node, now) {
  const { started, finished } = node.dataset;
  const task = { started_at: started || null, finished_at: finished || null };
  const running = Boolean(task.started_at && !task.finished_at);
  node.textContent = formatDuration(durationOf(task, now), running);
  node.toggleAttribute("data-running", running);
}

function tick() {
  shown = serverNow();
  for (const node of document.querySelectorAll(".duration[data-running]")) paint(node, shown);
}

/** An element with `task`'s duration, start to finish or, while it runs, to now (counting). */
export function durationElement(task) {
  if (timer === null) {
    shown = serverNow();
    timer = setInterval(tick, TICK_MS);
  }
  const node = el("span", {
    class: "duration", "data-started": task.started_at, "data-finished": task.finished_at,
  });
  paint(node, shown);
  return node;
}
