// A task's output (its `log`, `log_held` and `log_cut` events), however long: only the
// visible rows exist.
//
// Lines are kept in three parallel arrays (text without escape codes, number, stream), plus
// the raw text of the few lines that hold escape codes. Rows have one fixed height, so the
// scroll box holds a spacer as tall as every line and the rows in view (and a few more) are
// built on each frame that needs it, at the offset they would have. Past MAX_SPACER_PX (about
// 500,000 lines) the spacer stops growing and scroll offsets are scaled, since browsers cap an
// element's height. The search runs over the arrays in slices of a few milliseconds.

import { hasEscapes, parseAnsi, stripAnsi } from "./ansi.js";
import { el, showMessage } from "./format.js";

const ROW_PX = 20; // .log-row's height in dashboard.css
const OVERSCAN = 10; // rows built above and below the visible ones
const MAX_SPACER_PX = 10_000_000;
const FOLLOW_SLACK_PX = 4;
const SEARCH_SLICE_MS = 8; // one slice of the search, then the page gets its turn
const MAX_MATCHES = 100_000;
const STDOUT = 0;
const STDERR = 1;
const CUT = 2;

/** "1.5 kB", "3.2 MB": decimal units, as `ls -h --si`. */
export function formatBytes(bytes) {
  const units = ["bytes", "kB", "MB", "GB", "TB"];
  let value = Number(bytes) || 0;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit ? `${value.toFixed(1)} ${units[unit]}` : `${value} ${units[0]}`;
}

const count = (n) => Number(n).toLocaleString("en-US");

export class LogView {
  constructor(api, root) {
    this.api = api;
    this.section = root.querySelector("#output");
    this.box = root.querySelector("#log-lines");
    this.spacer = this.box.querySelector(".log-spacer");
    this.rows = this.box.querySelector(".log-rows");
    this.size = root.querySelector("#log-size");
    this.searchBox = root.querySelector("#log-search");
    this.matchLabel = root.querySelector("#log-matches");
    this.followButton = root.querySelector("#log-follow");
    this.downloadButton = root.querySelector("#log-download");
    this.error = root.querySelector("#log-error");
    this.frame = 0;

    this.box.addEventListener("scroll", () => this.scrolled());
    window.addEventListener("resize", () => this.schedule());
    this.followButton.addEventListener("click", () => this.setFollowing(!this.following, true));
    this.downloadButton.addEventListener("click", () => this.download());
    this.searchBox.addEventListener("input", () => {
      clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(() => this.search(this.searchBox.value), 250);
    });
    this.searchBox.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        this.step(event.shiftKey ? -1 : 1);
      } else if (event.key === "Escape") {
        this.searchBox.value = "";
        this.search("");
      }
    });
    root.querySelector("#log-next").addEventListener("click", () => this.step(1));
    root.querySelector("#log-prev").addEventListener("click", () => this.step(-1));
    this.reset(null);
  }

  /** Empty the view for `taskId` (null: no task). */
  reset(taskId) {
    this.taskId = taskId;
    this.texts = [];
    this.numbers = [];
    this.streams = [];
    this.raw = new Map(); // row index -> the line with its escape codes
    this.cuts = 0;
    this.nextLine = 1;
    this.target = null; // the line asked for by a link, once it is here
    this.pendingLine = null; // ...before it is
    this.searchBox.value = "";
    this.clearSearch();
    this.section.hidden = true;
    this.shown = "";
    this.lastTop = 0;
    this.spacerPx = -1;
    showMessage(this.error, "");
    this.setFollowing(true, false);
    this.layout();
    this.scrollTo(0);
    this.rows.replaceChildren();
  }

  // -- lines in ---------------------------------------------------------------------------

  /** Take a `log`, `log_held` or `log_cut` event. */
  append(event) {
    const data = event.data && typeof event.data === "object" ? event.data : {};
    if (event.kind === "log_held") {
      // Past the head of the byte cap the runner keeps the tail until the command ends.
      const after = Number(data.after_line) || this.nextLine - 1;
      this.push(`… output after line ${count(after)} is held until the command ends; ` +
        "its last part follows then …", after, CUT);
    } else if (event.kind === "log_cut") {
      const after = Number(data.after_line) || this.nextLine - 1;
      const left = Number(data.lines_left_out) || 0;
      this.push(`… ${count(left)} lines (${formatBytes(data.bytes_left_out)}) left out …`,
        after, CUT);
      this.nextLine = after + left + 1;
    } else if (Array.isArray(data.lines) || typeof data.line === "string") {
      const lines = data.lines ?? [data.line]; // {"line": ...}: an event stored before batches
      const stream = data.stream === "stderr" ? STDERR : STDOUT;
      let number = Number.isSafeInteger(data.first_line) ? data.first_line : this.nextLine;
      for (const line of lines) {
        if (number >= this.nextLine) this.push(String(line), number, stream); // else: shown
        number += 1;
      }
      this.nextLine = Math.max(this.nextLine, number);
    } else {
      return;
    }
    this.section.hidden = false;
    this.size.textContent = `${count(this.texts.length - this.cuts)} lines`;
    this.layout();
    if (this.pendingLine !== null) this.reveal(this.pendingLine);
    else if (this.following) this.scrollTo(this.box.scrollHeight);
    if (this.query && !this.searching) this.searchOn();
    this.changed();
  }

  push(line, number, stream) {
    if (hasEscapes(line)) {
      this.raw.set(this.texts.length, line);
      this.texts.push(stripAnsi(line));
    } else {
      this.texts.push(line);
    }
    this.numbers.push(number);
    this.streams.push(stream);
    if (stream === CUT) this.cuts += 1;
  }

  /** The task ended: a line asked for that never came is forgotten. */
  ended() {
    this.pendingLine = null;
  }

  // -- geometry ---------------------------------------------------------------------------

  /** Size the spacer for every row; the scroll offset stays where it is. */
  layout() {
    const spacer = Math.min(this.texts.length * ROW_PX, MAX_SPACER_PX);
    if (spacer !== this.spacerPx) {
      this.spacer.style.height = `${spacer}px`; // CSSOM, which style-src 'self' allows
      this.spacerPx = spacer;
      const digits = String(this.numbers[this.numbers.length - 1] ?? 1).length;
      this.box.style.setProperty("--line-digits", `${Math.max(digits, 3)}ch`);
    }
  }

  /** The offset of the view's top in the full height of all rows (scaled past the cap). */
  virtualTop() {
    const full = this.texts.length * ROW_PX;
    const { scrollTop, clientHeight } = this.box;
    if (full <= MAX_SPACER_PX) return scrollTop;
    return scrollTop * ((full - clientHeight) / (MAX_SPACER_PX - clientHeight));
  }

  /** The scroll offset that puts row `index` at `fraction` of the view's height. */
  offsetOf(index, fraction) {
    const full = this.texts.length * ROW_PX;
    const { clientHeight } = this.box;
    const top = Math.max(0, index * ROW_PX - (clientHeight - ROW_PX) * fraction);
    if (full <= MAX_SPACER_PX) return top;
    return top * ((MAX_SPACER_PX - clientHeight) / (full - clientHeight));
  }

  atBottom() {
    const { scrollHeight, scrollTop, clientHeight } = this.box;
    return scrollHeight - scrollTop - clientHeight <= FOLLOW_SLACK_PX;
  }

  scrollTo(top) {
    this.box.scrollTop = top;
    this.lastTop = this.box.scrollTop; // the scroll event this causes is not the user's
  }

  /** Scrolling up pauses following; scrolling down to the end resumes it. */
  scrolled() {
    const top = this.box.scrollTop;
    if (top < this.lastTop - 1) this.setFollowing(false, false);
    else if (top > this.lastTop + 1 && this.atBottom()) this.setFollowing(true, false);
    this.lastTop = top;
    this.schedule();
  }

  setFollowing(on, scroll) {
    this.following = on;
    this.followButton.setAttribute("aria-pressed", String(on));
    if (on && scroll) this.scrollTo(this.box.scrollHeight);
  }

  // -- rows out ---------------------------------------------------------------------------

  changed() {
    this.shown = "";
    this.schedule();
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  render() {
    this.frame = 0;
    const total = this.texts.length;
    const top = this.virtualTop();
    const first = Math.max(0, Math.floor(top / ROW_PX) - OVERSCAN);
    const last = Math.min(total, Math.ceil((top + this.box.clientHeight) / ROW_PX) + OVERSCAN);
    this.rows.style.transform = `translateY(${this.box.scrollTop + first * ROW_PX - top}px)`;
    const key = `${first}:${last}`;
    if (key === this.shown) return;
    this.shown = key;
    const rows = [];
    for (let i = first; i < last; i += 1) rows.push(this.row(i));
    this.rows.replaceChildren(...rows);
  }

  row(index) {
    const stream = this.streams[index];
    if (stream === CUT) {
      return el("div", { class: "log-row cut", "data-cut-after": this.numbers[index] },
        el("span", { class: "log-text", text: this.texts[index] }));
    }
    const number = this.numbers[index];
    const classes = ["log-row", stream === STDERR ? "stderr" : "stdout"];
    if (number === this.target) classes.push("target");
    return el("div", { class: classes.join(" "), "data-line": number },
      el("a", { class: "log-number", href: `#/tasks/${this.taskId}/line/${number}`,
        "aria-label": `Line ${number}`, text: number }),
      el("span", { class: "log-stream", title: stream === STDERR ? "stderr" : null,
        text: stream === STDERR ? "err" : "" }),
      el("span", { class: "log-text" }, ...this.content(index)));
  }

  /** The row's text as nodes: colour spans, and marks around the search's matches. */
  content(index) {
    const raw = this.raw.get(index);
    const segments = raw === undefined ? [{ text: this.texts[index], cls: "" }] : parseAnsi(raw);
    const ranges = [];
    if (this.pattern) {
      const current = this.current >= 0 && this.matchRows[this.current] === index
        ? this.matchCols[this.current] : -1;
      const { pattern } = this;
      const text = this.texts[index];
      pattern.lastIndex = 0;
      for (let match = pattern.exec(text); match; match = pattern.exec(text)) {
        ranges.push([match.index, pattern.lastIndex, match.index === current]);
      }
    }
    const nodes = [];
    let offset = 0;
    let r = 0;
    for (const { text, cls } of segments) {
      let i = 0;
      while (i < text.length) {
        const at = offset + i;
        while (r < ranges.length && ranges[r][1] <= at) r += 1;
        const range = ranges[r];
        const inside = range !== undefined && range[0] <= at;
        const end = Math.min(text.length,
          (inside ? range[1] : range?.[0] ?? Infinity) - offset);
        const piece = text.slice(i, end);
        const node = cls ? el("span", { class: cls, text: piece }) : document.createTextNode(piece);
        nodes.push(inside ? el("mark", { class: range[2] ? "current" : null }, node) : node);
        i = end;
      }
      offset += text.length;
    }
    return nodes;
  }

  // -- a link to one line -----------------------------------------------------------------

  /** Scroll to line `number` and mark it; wait for it while it has not arrived. */
  reveal(number) {
    if (number === null) {
      this.pendingLine = null;
      if (this.target !== null) {
        this.target = null;
        this.changed();
      }
      return;
    }
    const index = this.indexOf(number);
    if (index < 0) {
      this.pendingLine = number;
      return;
    }
    this.pendingLine = null;
    this.target = number;
    this.setFollowing(false, false);
    this.layout();
    const view = this.visibleRows();
    if (index < view.first + 1 || index > view.last - 2) this.scrollTo(this.offsetOf(index, 0.5));
    this.changed();
  }

  /** The row of line `number` (the cut marker for a line left out), or -1. */
  indexOf(number) {
    const { numbers } = this;
    if (!numbers.length || number > numbers[numbers.length - 1]) return -1;
    let low = 0;
    let high = numbers.length - 1;
    while (low < high) { // the first row numbered `number` or more
      const mid = (low + high) >> 1;
      if (numbers[mid] < number) low = mid + 1;
      else high = mid;
    }
    if (numbers[low] > number && low > 0 && this.streams[low - 1] === CUT) return low - 1;
    return low;
  }

  visibleRows() {
    const top = this.virtualTop();
    return { first: Math.floor(top / ROW_PX),
      last: Math.floor((top + this.box.clientHeight) / ROW_PX) };
  }

  // -- search ------------------------------------------------------------------------------

  clearSearch() {
    clearTimeout(this.searchTimer);
    clearTimeout(this.sliceTimer);
    this.query = "";
    this.pattern = null; // the query as a case-insensitive RegExp: faster than lowercasing
    this.matchRows = [];
    this.matchCols = [];
    this.current = -1;
    this.scanned = 0;
    this.searching = false;
    this.wanted = 0; // a step asked for before the first match was found
    this.matchLabel.textContent = "";
  }

  /** Find `text` (ignoring case) in every line, a slice at a time. */
  search(text) {
    if (text === this.query) return;
    this.clearSearch();
    this.query = text;
    this.pattern = text ? new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "gi") : null;
    this.changed();
    if (text) this.searchOn();
  }

  searchOn() {
    this.searching = true;
    this.sliceTimer = setTimeout(() => this.searchSlice(), 0);
  }

  searchSlice() {
    const { pattern, texts, streams, matchRows, matchCols } = this;
    const deadline = performance.now() + SEARCH_SLICE_MS;
    let i = this.scanned;
    while (i < texts.length && matchRows.length < MAX_MATCHES) {
      if (streams[i] !== CUT) {
        pattern.lastIndex = 0;
        for (let match = pattern.exec(texts[i]); match && matchRows.length < MAX_MATCHES;
          match = pattern.exec(texts[i])) {
          matchRows.push(i);
          matchCols.push(match.index);
        }
      }
      i += 1;
      if ((i & 1023) === 0 && performance.now() > deadline) break;
    }
    this.scanned = i;
    const more = i < texts.length && matchRows.length < MAX_MATCHES;
    if (more) this.sliceTimer = setTimeout(() => this.searchSlice(), 0);
    this.searching = more;
    if (this.wanted && !more) {
      const direction = this.wanted;
      this.wanted = 0;
      this.step(direction);
    }
    this.label();
    this.changed();
  }

  label() {
    const total = this.matchRows.length;
    const plus = total >= MAX_MATCHES ? "+" : "";
    if (!this.query) this.matchLabel.textContent = "";
    else if (!total) this.matchLabel.textContent = this.searching ? "Searching…" : "No matches";
    else if (this.current < 0) this.matchLabel.textContent = `${count(total)}${plus} matches`;
    else this.matchLabel.textContent = `${count(this.current + 1)} of ${count(total)}${plus}`;
  }

  /** Go to the next (1) or previous (-1) match and scroll it into view. */
  step(direction) {
    if (this.searchBox.value !== this.query) this.search(this.searchBox.value);
    if (!this.query) return;
    const total = this.matchRows.length;
    if (this.current < 0 && this.searching) {
      this.wanted = direction; // once every line is searched
      return;
    }
    if (!total) return;
    if (this.current < 0) {
      // The first match from the top of the view, or the last one above it.
      const { first } = this.visibleRows();
      let next = this.matchRows.findIndex((row) => row >= first);
      if (direction < 0) next = next <= 0 ? total - 1 : next - 1;
      this.current = next < 0 ? 0 : next;
    } else {
      this.current = (this.current + direction + total) % total;
    }
    const index = this.matchRows[this.current];
    this.setFollowing(false, false);
    const view = this.visibleRows();
    if (index < view.first + 1 || index > view.last - 2) this.scrollTo(this.offsetOf(index, 0.4));
    this.label();
    this.changed();
  }

  // -- download ----------------------------------------------------------------------------

  /** Save the whole output (GET /ops/tasks/{id}/log, raw text) as task-{id}.log. */
  async download() {
    const taskId = this.taskId;
    this.downloadButton.disabled = true;
    showMessage(this.error, "");
    try {
      const blob = await this.api.blob(`/tasks/${taskId}/log`);
      if (taskId !== this.taskId) return;
      const url = URL.createObjectURL(blob);
      const link = el("a", { href: url, download: `task-${taskId}.log`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (error) {
      if (taskId === this.taskId) {
        showMessage(this.error, `Could not download the log: ${error.message}`);
      }
    } finally {
      this.downloadButton.disabled = false;
    }
  }
}
