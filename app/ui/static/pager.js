// Cursor paging of a newest-first list (the tasks, the audit trail): "Older" follows the
// answer's next_cursor, "Newer" goes back to a page already seen.

export class Pager {
  /** `load()` is called whenever the page changes; it reads `cursor` and, once its answer
   *  is in, calls `shown(next_cursor)`. */
  constructor({ newer, older, label }, load) {
    this.newer = newer;
    this.older = older;
    this.label = label;
    this.load = load;
    this.reset();
    older.addEventListener("click", () => {
      if (this.nextCursor === null) return;
      this.cursors = [...this.cursors.slice(0, this.page + 1), this.nextCursor];
      this.page += 1;
      load();
    });
    newer.addEventListener("click", () => {
      if (this.page === 0) return;
      this.page -= 1;
      load();
    });
  }

  reset() {
    this.cursors = [null]; // the cursor that starts each page seen so far
    this.page = 0;
    this.nextCursor = null;
  }

  /** Back to the newest page, and load it. */
  first() {
    this.reset();
    this.load();
  }

  /** Where the page to load starts (null: the newest). */
  get cursor() {
    return this.cursors[this.page];
  }

  /** The page's answer arrived: remember where the next one starts. */
  shown(nextCursor) {
    this.nextCursor = nextCursor ?? null;
  }

  /** Enable the buttons that lead somewhere, and say which page this is. */
  render() {
    this.newer.disabled = this.page === 0;
    this.older.disabled = this.nextCursor === null;
    this.label.textContent = `Page ${this.page + 1}`;
  }
}
