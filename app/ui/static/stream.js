// A task's live event log over EventSource, resumed without gaps or repeats.
//
// Each connection uses a fresh stream token from POST /ops/stream_tokens and asks for the
// events after the last one shown (last_event_id). The browser's own reconnect is never used:
// it would reuse a token that may have expired. Instead, on an error, or shortly before the
// token expires, the connection is closed and a new one opened with a new token. Events whose
// id is not above the last one shown are dropped, so a replay never shows an event twice.

import { TERMINAL } from "./format.js";

// Every kind a runner writes (a named SSE event reaches only listeners for its name):
// lifecycle, the dev runner's tick, the recipe runner's log/log_held/log_cut, the LLM
// runner's text. tests/test_dashboard_ui.py checks this list against the runners' code.
export const EVENT_KINDS = [
  "created", "status", "waiting", "tick", "log", "log_held", "log_cut", "text", "message",
  ...TERMINAL,
];

const RENEW_MARGIN_MS = 15_000; // renew this long before the token expires...
const RENEW_FRACTION = 0.8; // ...or after this part of its lifetime, whichever is sooner
const MIN_RENEW_MS = 1_000;
const RETRY_MS = [500, 1_000, 2_000, 5_000, 10_000];

/** When to renew a token expiring at `expiresAt` (ISO), in milliseconds from now. */
export function renewDelay(expiresAt, now = Date.now()) {
  const lifetime = Date.parse(expiresAt) - now;
  if (Number.isNaN(lifetime)) return MIN_RENEW_MS;
  return Math.max(MIN_RENEW_MS, Math.min(lifetime - RENEW_MARGIN_MS, lifetime * RENEW_FRACTION));
}

export class TaskStream {
  /**
   * @param {import("./api.js").Api} api
   * @param {number} taskId
   * @param {{onEvent: Function, onState: Function}} handlers onEvent(event) for each new event;
   *   onState(state, detail) with state "connecting", "live", "reconnecting", "ended" or "gone".
   */
  constructor(api, taskId, { onEvent, onState }) {
    this.api = api;
    this.taskId = taskId;
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastId = 0;
    this.source = null;
    this.timer = null;
    this.failures = 0;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  /** Close the connection and forget every timer; the stream stays silent afterwards. */
  stop() {
    this.stopped = true;
    this.closeSource();
  }

  closeSource() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.source) this.source.close();
    this.source = null;
  }

  async connect() {
    this.closeSource();
    if (this.stopped) return;
    this.onState(this.failures ? "reconnecting" : "connecting");
    let grant;
    try {
      grant = await this.api.post("/stream_tokens", { task_id: this.taskId });
    } catch (error) {
      if (this.stopped) return;
      if (error.status === 404) return this.end("gone", error.message);
      if (error.status === 401) return this.end("ended", error.message); // signed out
      return this.retryLater();
    }
    if (this.stopped) return;
    const query = new URLSearchParams({ token: grant.token, last_event_id: String(this.lastId) });
    const source = new EventSource(`${this.api.root}/tasks/${this.taskId}/stream?${query}`);
    this.source = source;
    const connection = { opened: false, delivered: 0 };
    for (const kind of EVENT_KINDS) {
      source.addEventListener(kind, (message) => this.receive(source, connection, message));
    }
    source.onopen = () => {
      if (source !== this.source) return;
      connection.opened = true;
      this.failures = 0;
      this.onState("live");
    };
    source.onerror = () => this.dropped(source, connection);
    this.timer = setTimeout(() => {
      if (source === this.source) this.connect(); // renew the token before it expires
    }, renewDelay(grant.expires_at));
  }

  receive(source, connection, message) {
    if (source !== this.source) return; // a connection already replaced
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    const id = Number(message.lastEventId || event.id);
    if (!Number.isSafeInteger(id) || id <= this.lastId) return; // seen already
    this.lastId = id;
    connection.delivered += 1;
    this.onEvent(event);
    // The server ends the stream after the terminal event; without this close the browser
    // would reconnect to a finished task.
    if (TERMINAL.has(event.kind)) this.end("ended");
  }

  async dropped(source, connection) {
    if (source !== this.source || this.stopped) return;
    this.closeSource();
    // A stream of a finished task that ends with nothing new means everything was shown.
    if (connection.opened && connection.delivered === 0) {
      try {
        const task = await this.api.get(`/tasks/${this.taskId}`);
        if (TERMINAL.has(task.status)) return this.end("ended");
      } catch (error) {
        if (error.status === 404) return this.end("gone", error.message);
        if (error.status === 401) return this.end("ended", error.message);
      }
    }
    this.retryLater();
  }

  retryLater() {
    if (this.stopped) return;
    const delay = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
    this.failures += 1;
    this.onState("reconnecting");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  end(state, detail) {
    this.stop();
    this.onState(state, detail);
  }
}
