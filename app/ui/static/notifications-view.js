// The open task's notifications (GET /ops/tasks/{id}/notifications): each delivery's event,
// URL, how it went ("delivered after 3 attempts", "retrying (2 attempts, next at 10:04:05)",
// "failed: 404") and the last error. Read when the task opens and when it ends, then again
// every few seconds while a delivery is pending; nothing is shown while the list is empty.

import { serverNow } from "./clock.js";
import { TERMINAL, el, formatTimeOfDay } from "./format.js";

const REFRESH_MS = 2_500;
// An ending's deliveries are listed a moment after it (the notifier queues the ending, then a
// sender adds them): for this long after the end the list is read again until they are there.
const SETTLE_MS = 8_000;

const plural = (count, word) => `${count} ${word}${count === 1 ? "" : "s"}`;

/** How a delivery went, in words. */
export function deliveryText(delivery) {
  const { attempts, status } = delivery;
  if (status === "delivered") {
    return attempts > 1 ? `delivered after ${attempts} attempts` : "delivered";
  }
  if (status === "failed") {
    return delivery.last_status ? `failed: ${delivery.last_status}`
      : `failed after ${plural(attempts, "attempt")}`;
  }
  if (!attempts) return "sending";
  const next = delivery.next_attempt_at ? `, next at ${formatTimeOfDay(delivery.next_attempt_at)}`
    : "";
  return `retrying (${plural(attempts, "attempt")}${next})`;
}

/** The last error, unless the status already says it ("failed: 404" and "HTTP 404"). */
function errorText(delivery) {
  const error = delivery.last_error;
  if (!error || delivery.status === "delivered") return null;
  if (delivery.status === "failed" && error === `HTTP ${delivery.last_status}`) return null;
  return error;
}

export class NotificationsView {
  constructor(api, root) {
    this.api = api;
    this.section = root.querySelector("#notifications");
    this.list = root.querySelector("#notification-list");
    this.task = null;
    this.deliveries = [];
    this.shown = ""; // what the list shows, to leave it alone when nothing changed
    this.timer = null;
    this.reads = 0; // only the newest read's answer is shown
  }

  /** A fresh read of the open task: a new task is read at once, an ended one again. */
  show(task) {
    const ended = TERMINAL.has(task.status) && !TERMINAL.has(this.task?.status);
    const opened = task.id !== this.task?.id;
    if (opened) this.reset();
    this.task = task;
    if (opened || ended) this.load();
  }

  /** Forget the task and stop reading. */
  reset() {
    clearTimeout(this.timer);
    this.timer = null;
    this.reads += 1;
    this.task = null;
    this.deliveries = [];
    this.shown = "";
    this.list.replaceChildren();
    this.section.hidden = true;
  }

  async load() {
    clearTimeout(this.timer);
    this.timer = null;
    const read = ++this.reads;
    const taskId = this.task.id;
    try {
      const answer = await this.api.get(`/tasks/${taskId}/notifications`);
      if (read !== this.reads) return;
      this.render(answer?.notifications ?? []);
    } catch (error) {
      if (read !== this.reads) return;
      // 404: the task is gone (the task view says so), or the server has no such list.
      if (error.status === 404) return;
    }
    if (this.wanted()) this.timer = setTimeout(() => this.load(), REFRESH_MS);
  }

  /** Read again: a delivery is pending, or the task has just ended and its ending's
   *  deliveries are not listed yet. */
  wanted() {
    if (this.deliveries.some((d) => d.status === "pending")) return true;
    const task = this.task;
    if (!TERMINAL.has(task.status) || this.deliveries.some((d) => d.event === "task.ended")) {
      return false;
    }
    const finished = Date.parse(task.finished_at ?? "");
    return !Number.isNaN(finished) && serverNow() - finished < SETTLE_MS;
  }

  render(deliveries) {
    this.deliveries = deliveries;
    const shown = JSON.stringify(deliveries);
    if (shown === this.shown) return;
    this.shown = shown;
    this.list.replaceChildren(...deliveries.map((delivery) => {
      const error = errorText(delivery);
      return el("li", {
        class: "delivery", "data-delivery-id": delivery.id, "data-status": delivery.status,
      },
      el("div", { class: "delivery-head" },
        el("span", { class: "delivery-event", text: delivery.event }),
        el("span", {
          class: `delivery-status delivery-${delivery.status}`, text: deliveryText(delivery),
        })),
      el("div", { class: "delivery-url", text: delivery.url }),
      error ? el("div", { class: "delivery-error", text: `Last error: ${error}` }) : null);
    }));
    this.section.hidden = deliveries.length === 0;
  }
}
