// The task list: newest first, filtered by status and by who created it (anyone, or the
// signed-in user), paged with the API's cursor, and refreshed by itself while a task on the
// page is queued or running.

import { durationElement, observeStamps } from "./clock.js";
import { ACTIVE, badge, el, formatTime, showMessage } from "./format.js";
import { Pager } from "./pager.js";

const REFRESH_MS = 2_000;
// How far along a task is: a read of a later stage is the newer one.
const STAGE = { queued: 0, running: 1, done: 2, failed: 2, canceled: 2 };

export class TaskList {
  constructor(api, root) {
    this.api = api;
    this.list = root.querySelector("#task-list");
    this.empty = root.querySelector("#list-empty");
    this.error = root.querySelector("#list-error");
    this.state = root.querySelector("#list-state");
    this.filter = root.querySelector("#status-filter");
    this.owner = root.querySelector("#owner-filter");
    this.me = root.querySelector("#owner-me");
    this.pageSize = root.querySelector("#page-size");
    this.pager = new Pager({ newer: root.querySelector("#newer"),
                             older: root.querySelector("#older"),
                             label: root.querySelector("#page-label") },
                           () => this.load());
    this.selectedId = null;
    this.timer = null;
    this.generation = 0; // answers to older requests are dropped

    this.filter.addEventListener("change", () => this.firstPage());
    this.owner.addEventListener("change", () => this.firstPage());
    this.pageSize.addEventListener("change", () => this.firstPage());
    root.querySelector("#refresh").addEventListener("click", () => this.load());
  }

  firstPage() {
    this.pager.first();
  }

  start() {
    this.firstPage();
  }

  /** The signed-in user's name, for the "Created by: Me" filter (the header names them). */
  setOwner(name) {
    this.me.value = name;
  }

  stop() {
    this.generation += 1;
    clearTimeout(this.timer);
    this.timer = null;
    this.list.replaceChildren();
    this.list.removeAttribute("aria-busy");
    this.filter.value = "";
    this.owner.value = "";
    showMessage(this.error, "");
  }

  async load() {
    const generation = ++this.generation;
    clearTimeout(this.timer);
    const query = new URLSearchParams({ limit: this.pageSize.value });
    if (this.filter.value) query.set("status", this.filter.value);
    if (this.owner.value) query.set("created_by", this.owner.value);
    const cursor = this.pager.cursor;
    if (cursor !== null) query.set("cursor", String(cursor));
    this.state.textContent = "Loading…";
    this.list.setAttribute("aria-busy", "true");
    let answer;
    try {
      answer = await this.api.get(`/tasks?${query}`);
    } catch (error) {
      if (generation !== this.generation) return;
      this.list.setAttribute("aria-busy", "false");
      // Above the list, which stays as it was: the reader sees first that it is out of date.
      const reason = /[.!?]$/.test(error.message) ? error.message : `${error.message}.`;
      const stale = this.list.children.length ? " The list below is from before." : "";
      showMessage(this.error, `Could not load the tasks: ${reason}${stale}`);
      this.state.textContent = error.status === 401 ? "" : "Retrying…";
      if (error.status !== 401) this.timer = setTimeout(() => this.load(), REFRESH_MS * 2);
      return;
    }
    if (generation !== this.generation) return;
    showMessage(this.error, "");
    const tasks = Array.isArray(answer?.tasks) ? answer.tasks : [];
    this.pager.shown(answer?.next_cursor);
    this.render(tasks);
    this.list.setAttribute("aria-busy", "false");
    const active = tasks.some((task) => ACTIVE.has(task.status));
    this.state.textContent = active ? "Updating live" : "";
    if (active) this.timer = setTimeout(() => this.load(), REFRESH_MS);
  }

  render(tasks) {
    observeStamps(...tasks.flatMap((task) => [task.created_at, task.started_at, task.finished_at]));
    this.list.replaceChildren(...tasks.map((task) => this.row(this.fresher(task))));
    this.empty.hidden = tasks.length > 0;
    this.pager.render();
  }

  row(task) {
    const link = el("a", {
      class: "task-row",
      href: `#/tasks/${task.id}`,
      "data-task-id": task.id,
      "data-status": task.status,
      "aria-current": task.id === this.selectedId ? "true" : null,
    },
    badge(task.status),
    el("span", { class: "task-title", text: task.title }),
    el("span", { class: "task-meta" },
      `#${task.id} · created `,
      el("time", { datetime: task.created_at, text: formatTime(task.created_at) }),
      task.created_by ? ` by ${task.created_by}` : null,
      " · ", durationElement(task)));
    return el("li", {}, link);
  }

  /** Show `task` (the open task, just read) in its row at once: the list and the details
   *  then show one state, and one duration. A list read older than it does not undo it. */
  update(task) {
    this.open = task;
    const link = this.list.querySelector(`.task-row[data-task-id="${task.id}"]`);
    if (link) link.parentElement.replaceWith(this.row(task));
  }

  /** `task` as listed, or the open task's own read of it when that one is further on. */
  fresher(task) {
    const open = this.open;
    if (open?.id !== task.id || STAGE[open.status] <= STAGE[task.status]) return task;
    return open;
  }

  /** Mark the open task in the list. */
  select(taskId) {
    this.selectedId = taskId;
    for (const link of this.list.querySelectorAll(".task-row")) {
      if (Number(link.dataset.taskId) === taskId) link.setAttribute("aria-current", "true");
      else link.removeAttribute("aria-current");
    }
  }
}
