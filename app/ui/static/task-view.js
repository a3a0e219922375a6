// One task: its details, a cancel button, its live event log and its output (log-view.js).

import {
  TERMINAL, badge, describeEvent, durationOf, el, formatClock, formatDuration, formatTime,
  showMessage,
} from "./format.js";
import { LogView } from "./log-view.js";
import { TaskStream } from "./stream.js";

// Fields shown in this order; any other field of the task (a recipe, its params) follows.
const KNOWN_FIELDS = new Set([
  "id", "title", "body", "status", "runner", "created_at", "started_at", "finished_at", "error",
  "cancel_requested",
]);
const LIFECYCLE = new Set(["status", ...TERMINAL]);
const OUTPUT = new Set(["log", "log_held", "log_cut"]); // shown by the output view, not as events
const FOLLOW_SLACK_PX = 8;
const STREAM_STATES = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  ended: "Stream ended",
  gone: "Task not found",
};

export class TaskView {
  /** @param {{onTaskChanged: Function}} hooks onTaskChanged() when the task's status moves */
  constructor(api, root, { onTaskChanged }) {
    this.api = api;
    this.onTaskChanged = onTaskChanged;
    this.view = root.querySelector("#task-view");
    this.placeholder = root.querySelector("#no-task");
    this.heading = root.querySelector("#task-heading");
    this.details = root.querySelector("#task-details");
    this.cancelButton = root.querySelector("#cancel-task");
    this.streamState = root.querySelector("#stream-state");
    this.error = root.querySelector("#task-error");
    this.log = root.querySelector("#event-log");
    this.jump = root.querySelector("#jump-latest");
    this.output = new LogView(api, root);
    this.taskId = null;
    this.task = null;
    this.stream = null;
    this.clock = null;
    this.following = true;

    this.cancelButton.addEventListener("click", () => this.cancel());
    this.log.addEventListener("scroll", () => {
      this.following = this.atBottom();
      if (this.following) this.jump.hidden = true;
    });
    this.jump.addEventListener("click", () => this.scrollToEnd());
  }

  /** Show task `taskId`, and line `line` of its output when given (once it has arrived). */
  async open(taskId, line = null) {
    if (taskId === this.taskId) {
      this.output.reveal(line);
      return;
    }
    this.close();
    this.taskId = taskId;
    this.output.reset(taskId);
    this.output.reveal(line);
    this.view.hidden = false;
    this.placeholder.hidden = true;
    this.heading.textContent = `Task #${taskId}`;
    this.cancelButton.disabled = true;
    this.following = true;
    this.jump.hidden = true;
    let task;
    try {
      task = await this.api.get(`/tasks/${taskId}`);
    } catch (error) {
      if (this.taskId === taskId) showMessage(this.error, error.message);
      return;
    }
    if (this.taskId !== taskId) return; // another task was opened meanwhile
    this.render(task);
    this.stream = new TaskStream(this.api, taskId, {
      onEvent: (event) => this.append(event),
      onState: (state, detail) => {
        this.streamState.textContent = STREAM_STATES[state] ?? state;
        if (state === "gone") showMessage(this.error, detail);
      },
    });
    this.stream.start();
    this.clock = setInterval(() => this.tickDuration(), 1000);
  }

  close() {
    this.stream?.stop();
    this.stream = null;
    clearInterval(this.clock);
    this.taskId = null;
    this.task = null;
    this.log.replaceChildren();
    this.output.reset(null);
    this.details.replaceChildren();
    this.streamState.textContent = "";
    showMessage(this.error, "");
    this.view.hidden = true;
    this.placeholder.hidden = false;
  }

  render(task) {
    this.task = task;
    this.heading.textContent = `Task #${task.id}: ${task.title}`;
    const rows = [
      ["Status", badge(task.status)],
      ["Runner", task.runner ?? "—"],
      ["Created", formatTime(task.created_at)],
      ["Started", formatTime(task.started_at)],
      ["Finished", formatTime(task.finished_at)],
      ["Duration", el("span", { "data-field": "duration",
        text: formatDuration(durationOf(task)) })],
    ];
    if (task.error) rows.push(["Reason", task.error]);
    if (task.cancel_requested) rows.push(["Cancel", "requested"]);
    if (task.body) rows.push(["Notes", task.body]);
    for (const [name, value] of Object.entries(task)) {
      if (KNOWN_FIELDS.has(name) || value === null || value === undefined) continue;
      rows.push([name, typeof value === "object" ? JSON.stringify(value) : String(value)]);
    }
    this.details.replaceChildren(...rows.flatMap(([name, value]) => [
      el("dt", { text: name }), el("dd", {}, value)]));
    this.cancelButton.disabled = TERMINAL.has(task.status) || task.cancel_requested;
  }

  tickDuration() {
    const cell = this.details.querySelector('[data-field="duration"]');
    if (cell && this.task && !this.task.finished_at) {
      cell.textContent = formatDuration(durationOf(this.task));
    }
  }

  async refresh() {
    const taskId = this.taskId;
    try {
      const task = await this.api.get(`/tasks/${taskId}`);
      if (this.taskId === taskId) this.render(task);
    } catch (error) {
      if (this.taskId === taskId) showMessage(this.error, error.message);
    }
  }

  append(event) {
    if (OUTPUT.has(event.kind)) {
      this.output.append(event);
      return;
    }
    if (TERMINAL.has(event.kind)) this.output.ended();
    const follow = this.following;
    this.log.append(el("li", {
      class: `kind-${event.kind}`, "data-event-id": event.id, "data-kind": event.kind,
    },
    el("time", { datetime: event.created_at, text: formatClock(event.created_at) }),
    el("span", { class: "kind", text: event.kind }),
    el("span", { class: "text", text: describeEvent(event) })));
    if (follow) this.scrollToEnd();
    else this.jump.hidden = false;
    if (LIFECYCLE.has(event.kind)) {
      this.refresh();
      this.onTaskChanged();
    }
  }

  atBottom() {
    const { scrollHeight, scrollTop, clientHeight } = this.log;
    return scrollHeight - scrollTop - clientHeight <= FOLLOW_SLACK_PX;
  }

  scrollToEnd() {
    this.log.scrollTop = this.log.scrollHeight;
    this.following = true;
    this.jump.hidden = true;
  }

  async cancel() {
    const taskId = this.taskId;
    this.cancelButton.disabled = true;
    showMessage(this.error, "");
    try {
      await this.api.post(`/tasks/${taskId}/cancel`);
      this.streamState.textContent = "Cancel requested…";
    } catch (error) {
      if (this.taskId === taskId) showMessage(this.error, `Could not cancel: ${error.message}`);
    }
    if (this.taskId === taskId) this.refresh();
  }
}
