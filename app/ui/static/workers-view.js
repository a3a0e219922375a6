// The server processes that share the task queue (GET /ops/workers, any role): one table row
// each, live ones first, the process that answered marked. Read when the view opens, on
// Refresh, and every 5 seconds while the view stays open; leaving the view stops the reads.

import { durationElement } from "./clock.js";
import { el, formatTime, showMessage } from "./format.js";

const REFRESH_MS = 5_000;

/** The pools a process serves, in words (null: every pool). */
export function poolsText(pools) {
  if (!Array.isArray(pools)) return "every pool";
  return pools.length ? pools.join(", ") : "no pool";
}

/** How busy a process is: "1 of 4 running". */
export function loadText(worker) {
  return `${worker.running ?? 0} of ${worker.workers ?? "?"} running`;
}

/** Whether a process is live, has stopped, or has gone quiet. */
export function stateOf(worker) {
  if (worker.live === true) return "live";
  return worker.stopped_at ? "stopped" : "unseen";
}

/** The time since `iso`, counted on the page's one clock (clock.js), so that it moves. */
function since(iso) {
  return durationElement({ started_at: iso, finished_at: null });
}

function lastSeen(iso) {
  if (!iso) return "—";
  return el("time", { datetime: iso, title: formatTime(iso) }, since(iso), " ago");
}

function stateBadge(worker) {
  const state = stateOf(worker);
  const badge = el("span", { class: `badge worker-${state}` });
  if (state === "unseen") {
    badge.append(worker.last_seen ? "not seen for " : "not seen");
    if (worker.last_seen) badge.append(since(worker.last_seen));
  } else {
    badge.textContent = state;
  }
  return badge;
}

/** "2 live · 1 stopped": what the view's state line says once a read is in. */
function summary(workers) {
  const count = (state) => workers.filter((worker) => stateOf(worker) === state).length;
  const parts = [`${count("live")} live`];
  if (count("stopped")) parts.push(`${count("stopped")} stopped`);
  if (count("unseen")) parts.push(`${count("unseen")} not seen lately`);
  return parts.join(" · ");
}

export class WorkersView {
  constructor(api, root) {
    this.api = api;
    this.section = root.querySelector("#workers");
    this.rows = root.querySelector("#worker-rows");
    this.empty = root.querySelector("#workers-empty");
    this.error = root.querySelector("#workers-error");
    this.state = root.querySelector("#workers-state");
    this.hint = root.querySelector("#workers-hint");
    this.timer = null;
    this.generation = 0; // answers to older reads, or read before the view was left, are dropped
    this.shown = ""; // the answer the rows show, to leave them alone when nothing changed

    root.querySelector("#workers-refresh").addEventListener("click", () => this.load());
  }

  /** Show the view and read at once; it reads again every REFRESH_MS while shown. */
  show() {
    if (!this.section.hidden) return;
    this.section.hidden = false;
    this.load();
  }

  /** Hide the view and stop reading. */
  hide() {
    this.section.hidden = true;
    this.generation += 1;
    clearTimeout(this.timer);
    this.timer = null;
    this.rows.setAttribute("aria-busy", "false");
  }

  /** Forget everything shown (sign-out). */
  reset() {
    this.hide();
    this.rows.replaceChildren();
    this.rows.removeAttribute("aria-busy");
    this.shown = "";
    this.empty.hidden = true;
    this.say("");
    showMessage(this.error, "");
  }

  /** Set the state line (aria-live) only when it changes: a timed read is not announced. */
  say(text) {
    if (this.state.textContent !== text) this.state.textContent = text;
  }

  /** Read the list; a timed read (`timed`) says nothing while it is under way. */
  async load(timed = false) {
    const generation = ++this.generation;
    clearTimeout(this.timer);
    this.timer = null;
    if (!timed) this.say("Loading…");
    this.rows.setAttribute("aria-busy", "true");
    let answer;
    try {
      answer = await this.api.get("/workers");
    } catch (error) {
      if (generation !== this.generation) return;
      this.rows.setAttribute("aria-busy", "false");
      const reason = /[.!?]$/.test(error.message) ? error.message : `${error.message}.`;
      const stale = this.rows.children.length ? " The rows below are from before." : "";
      showMessage(this.error, `Could not load the server processes: ${reason}${stale}`);
      // 401 signs the page out (main.js); a role refused (403) is not retried.
      const retry = error.status !== 401 && error.status !== 403;
      this.say(retry ? "Retrying…" : "");
      if (retry) this.timer = setTimeout(() => this.load(true), REFRESH_MS);
      return;
    }
    if (generation !== this.generation) return;
    showMessage(this.error, "");
    this.render(Array.isArray(answer?.workers) ? answer.workers : [], answer?.live_seconds);
    this.rows.setAttribute("aria-busy", "false");
    this.timer = setTimeout(() => this.load(true), REFRESH_MS);
  }

  render(workers, liveSeconds) {
    this.say(summary(workers));
    if (Number.isFinite(liveSeconds)) {
      this.hint.textContent = "One row per server process that serves the task queue, live ones "
        + `first. A process counts as live if it was seen in the last ${liveSeconds} s.`;
    }
    const shown = JSON.stringify(workers);
    if (shown === this.shown) return;
    this.shown = shown;
    this.rows.replaceChildren(...workers.map((worker) => this.row(worker)));
    this.empty.hidden = workers.length > 0;
  }

  row(worker) {
    const current = worker.this === true;
    return el("tr", { "data-worker-id": worker.id, "data-state": stateOf(worker),
                      "data-this": current, class: current ? "worker-current" : null },
      el("th", { scope: "row" },
        el("span", { class: "worker-host", text: worker.host }),
        current ? el("span", { class: "worker-this", text: "this process" }) : null),
      el("td", { class: "worker-pid", text: worker.pid }),
      el("td", { class: "worker-pools", text: poolsText(worker.pools) }),
      el("td", { class: "worker-load", text: loadText(worker) }),
      el("td", { class: "worker-seen" }, lastSeen(worker.last_seen)),
      el("td", {}, stateBadge(worker)));
  }
}
