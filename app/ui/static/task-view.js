// One task: its details, a cancel button (for a role that may cancel), a "Run again" button
// on a finished task (for a role that may create), where its notifications went
// (notifications-view.js), the model's answer (answer-view.js), its live event log and its
// output (log-view.js). A task that does not exist shows that and nothing else.

import { AnswerView } from "./answer-view.js";
import { observeStamps } from "./clock.js";
import { describeEvent } from "./events.js";
import { TERMINAL, el, formatClock, showMessage } from "./format.js";
import { LogView } from "./log-view.js";
import { NotificationsView } from "./notifications-view.js";
import { TaskStream } from "./stream.js";
import { detailNodes } from "./task-details.js";

const LIFECYCLE = new Set(["status", "waiting", ...TERMINAL]);
const OUTPUT = new Set(["log", "log_held", "log_cut"]); // shown by the output view, not as events
const FOLLOW_SLACK_PX = 8;
const STREAM_STATES = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  ended: "Stream ended",
};

export class TaskView {
  /** @param {{onTaskChanged: Function, onTaskShown: Function, onRelaunched: Function}} hooks
   *  onTaskChanged() when the task's status moves; onTaskShown(task) each time the details
   *  show a fresh read of it; onRelaunched(task) with the new task "Run again" created */
  constructor(api, root, { onTaskChanged, onTaskShown = () => {}, onRelaunched = () => {} }) {
    this.api = api;
    this.onTaskChanged = onTaskChanged;
    this.onTaskShown = onTaskShown;
    this.onRelaunched = onRelaunched;
    this.view = root.querySelector("#task-view");
    this.body = root.querySelector("#task-body");
    this.placeholder = root.querySelector("#no-task");
    this.heading = root.querySelector("#task-heading");
    this.details = root.querySelector("#task-details");
    this.cancelButton = root.querySelector("#cancel-task");
    this.relaunchButton = root.querySelector("#relaunch-task");
    this.streamState = root.querySelector("#stream-state");
    this.error = root.querySelector("#task-error");
    this.log = root.querySelector("#event-log");
    this.jump = root.querySelector("#jump-latest");
    this.answer = new AnswerView(root);
    this.output = new LogView(api, root);
    this.notifications = new NotificationsView(api, root);
    this.taskId = null;
    this.task = null;
    this.stream = null;
    this.state = null; // the stream's state
    this.cancelSent = false;
    this.following = true;
    this.mayCancel = false; // the signed-in role may cancel; else there is no button
    this.mayRelaunch = false; // the signed-in role may create tasks; else no "Run again"

    this.cancelButton.addEventListener("click", () => this.cancel());
    this.relaunchButton.addEventListener("click", () => this.relaunch());
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
    this.following = true;
    this.jump.hidden = true;
    let task;
    try {
      task = await this.api.get(`/tasks/${taskId}`);
    } catch (error) {
      if (this.taskId !== taskId) return;
      if (error.status === 404) this.notFound();
      else showMessage(this.error, `Could not load the task: ${error.message}`);
      return;
    }
    if (this.taskId !== taskId) return; // another task was opened meanwhile
    this.render(task);
    this.body.hidden = false;
    this.stream = new TaskStream(this.api, taskId, {
      onEvent: (event) => this.append(event),
      onState: (state) => {
        if (state === "gone") this.notFound(); // deleted meanwhile (retention)
        else this.showState(state);
      },
    });
    this.stream.start();
  }

  close() {
    this.stream?.stop();
    this.stream = null;
    this.taskId = null;
    this.task = null;
    this.state = null;
    this.cancelSent = false;
    this.log.replaceChildren();
    this.answer.reset();
    this.output.reset(null);
    this.notifications.reset();
    this.details.replaceChildren();
    this.streamState.textContent = "";
    showMessage(this.error, "");
    this.body.hidden = true;
    this.view.hidden = true;
    this.placeholder.hidden = false;
  }

  /** The task does not exist (any more): say so, and show nothing else of it. */
  notFound() {
    const taskId = this.taskId;
    this.close();
    this.taskId = taskId;
    this.view.hidden = false;
    this.placeholder.hidden = true;
    this.heading.textContent = `Task ${taskId} not found`;
  }

  render(task) {
    this.task = task;
    observeStamps(task.created_at, task.started_at, task.finished_at);
    this.heading.textContent = `Task #${task.id}: ${task.title}`;
    this.details.replaceChildren(...detailNodes(task));
    this.notifications.show(task); // read when the task opens, and again when it has ended
    this.onTaskShown(task); // the list's row shows the same read at the same moment
    this.cancelButton.hidden = !this.mayCancel;
    this.cancelButton.disabled = TERMINAL.has(task.status) || task.cancel_requested;
    // Only a finished task runs again (the server answers 409 for the others).
    this.relaunchButton.hidden = !(this.mayRelaunch && TERMINAL.has(task.status));
    this.showState(this.state);
  }

  /** The stream's state, or that a cancel is on its way; once the stream ended, only that. */
  showState(state) {
    this.state = state;
    const finished = state === "ended" || TERMINAL.has(this.task?.status);
    const canceling = !finished && (this.cancelSent || this.task?.cancel_requested);
    this.streamState.textContent = canceling ? "Cancel requested…" : STREAM_STATES[state] ?? "";
  }

  async refresh() {
    const taskId = this.taskId;
    try {
      const task = await this.api.get(`/tasks/${taskId}`);
      if (this.taskId === taskId) this.render(task);
    } catch (error) {
      if (this.taskId !== taskId) return;
      if (error.status === 404) this.notFound();
      else showMessage(this.error, error.message);
    }
  }

  append(event) {
    observeStamps(event.created_at);
    if (OUTPUT.has(event.kind)) {
      this.output.append(event);
      return;
    }
    if (event.kind === "text") {
      this.answer.add(event.data?.text);
      return;
    }
    if (TERMINAL.has(event.kind)) {
      this.output.ended();
      this.answer.finish(event.data?.text);
    }
    const follow = this.following;
    this.log.append(el("li", {
      class: `kind-${event.kind}`, "data-event-id": event.id, "data-kind": event.kind,
    },
    el("time", { datetime: event.created_at, text: formatClock(event.created_at) }),
    el("span", { class: "kind", text: event.kind }),
    el("span", { class: "text" }, ...describeEvent(event))));
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
      const task = await this.api.post(`/tasks/${taskId}/cancel`);
      if (this.taskId !== taskId) return;
      // A queued task is canceled at once; a running one stops at its next checkpoint. The
      // answer may come after the stream has ended: then the end is what stays shown.
      this.cancelSent = !TERMINAL.has(task?.status);
      this.showState(this.state);
    } catch (error) {
      if (this.taskId === taskId) showMessage(this.error, `Could not cancel: ${error.message}`);
    }
    if (this.taskId === taskId) this.refresh();
  }

  /** A new task as this one was (title, notes, recipe, parameters); then open it. */
  async relaunch() {
    const taskId = this.taskId;
    this.relaunchButton.disabled = true;
    showMessage(this.error, "");
    try {
      const task = await this.api.post(`/tasks/${taskId}/relaunch`);
      this.onRelaunched(task);
    } catch (error) {
      if (this.taskId === taskId) {
        showMessage(this.error, `Could not run it again: ${error.message}`);
      }
    } finally {
      this.relaunchButton.disabled = false;
    }
  }
}
