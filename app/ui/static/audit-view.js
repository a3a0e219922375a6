// The audit trail, for admins: GET /ops/audit newest first, filtered by actor and action,
// paged with the API's cursor like the task list.

import { el, formatTime, showMessage } from "./format.js";
import { Pager } from "./pager.js";

const OUTCOMES = new Set(["ok", "denied", "rejected", "error"]);

/** What a record's detail adds to its outcome, in words ("" when nothing). */
export function detailText(detail) {
  if (!detail || typeof detail !== "object") return "";
  const parts = [];
  const reason = detail.error || detail.reason;
  if (typeof reason === "string" && reason) parts.push(reason);
  if (Number.isInteger(detail.count) && detail.count > 1) parts.push(`${detail.count} times`);
  return parts.join(" · ");
}

export class AuditView {
  constructor(api, root) {
    this.api = api;
    this.section = root.querySelector("#audit");
    this.rows = root.querySelector("#audit-rows");
    this.empty = root.querySelector("#audit-empty");
    this.error = root.querySelector("#audit-error");
    this.state = root.querySelector("#audit-state");
    this.filters = root.querySelector("#audit-filters");
    this.actor = root.querySelector("#audit-actor");
    this.action = root.querySelector("#audit-action");
    this.pageSize = root.querySelector("#audit-page-size");
    this.pager = new Pager({ newer: root.querySelector("#audit-newer"),
                             older: root.querySelector("#audit-older"),
                             label: root.querySelector("#audit-page-label") },
                           () => this.load());
    this.generation = 0; // answers to older requests are dropped
    this.loaded = false;

    this.filters.addEventListener("submit", (event) => {
      event.preventDefault();
      this.firstPage();
    });
    this.action.addEventListener("change", () => this.firstPage());
    this.pageSize.addEventListener("change", () => this.firstPage());
    root.querySelector("#audit-refresh").addEventListener("click", () => this.load());
  }

  firstPage() {
    this.pager.first();
  }

  /** Show the view; the first time, load its first page. */
  show() {
    this.section.hidden = false;
    if (!this.loaded) this.firstPage();
  }

  hide() {
    this.section.hidden = true;
  }

  /** Forget everything shown (sign-out). */
  reset() {
    this.generation += 1;
    this.loaded = false;
    this.hide();
    this.rows.replaceChildren();
    this.rows.removeAttribute("aria-busy");
    this.actor.value = "";
    this.action.value = "";
    this.state.textContent = "";
    showMessage(this.error, "");
    this.pager.reset();
  }

  async load() {
    const generation = ++this.generation;
    this.loaded = true;
    const query = new URLSearchParams({ limit: this.pageSize.value });
    const actor = this.actor.value.trim();
    if (actor) query.set("actor", actor);
    if (this.action.value) query.set("action", this.action.value);
    const cursor = this.pager.cursor;
    if (cursor !== null) query.set("cursor", String(cursor));
    this.state.textContent = "Loading…";
    this.rows.setAttribute("aria-busy", "true");
    let answer;
    try {
      answer = await this.api.get(`/audit?${query}`);
    } catch (error) {
      if (generation !== this.generation) return;
      this.rows.setAttribute("aria-busy", "false");
      this.state.textContent = "";
      const stale = this.rows.children.length ? " The records below are from before." : "";
      showMessage(this.error, `Could not load the audit trail: ${error.message}${stale}`);
      return;
    }
    if (generation !== this.generation) return;
    showMessage(this.error, "");
    const records = Array.isArray(answer?.records) ? answer.records : [];
    this.pager.shown(answer?.next_cursor);
    this.rows.replaceChildren(...records.map((record) => this.row(record)));
    this.rows.setAttribute("aria-busy", "false");
    this.state.textContent = "";
    this.empty.hidden = records.length > 0;
    this.pager.render();
  }

  row(record) {
    const outcome = OUTCOMES.has(record.outcome) ? record.outcome : "error";
    const detail = detailText(record.detail);
    const task = Number.isInteger(record.task_id)
      ? el("a", { href: `#/tasks/${record.task_id}`, text: `#${record.task_id}` }) : "—";
    return el("tr", { "data-audit-id": record.id, "data-action": record.action },
      el("td", {}, el("time", { datetime: record.at, text: formatTime(record.at) })),
      el("td", { class: "audit-actor", text: record.actor ?? "—" }),
      el("td", { class: "audit-action", text: record.action }),
      el("td", { class: "audit-task" }, task),
      el("td", {},
        el("span", { class: `badge outcome-${outcome}`, text: record.outcome }),
        detail ? el("span", { class: "audit-detail", text: detail }) : null),
      el("td", { class: "audit-client", text: record.client ?? "—" }));
  }
}
