// The model's answer: the text of a task's `text` events as one block that grows as they
// arrive, and keeps its end in sight unless the reader scrolled up.

const FOLLOW_SLACK_PX = 8;

export class AnswerView {
  constructor(root) {
    this.section = root.querySelector("#answer");
    this.box = root.querySelector("#answer-text");
    this.reset();
  }

  reset() {
    this.box.replaceChildren();
    this.section.hidden = true;
    this.chars = 0;
  }

  /** Add a piece of the answer. */
  add(text) {
    if (typeof text !== "string" || !text) return;
    const { scrollHeight, scrollTop, clientHeight } = this.box;
    const follow = scrollHeight - scrollTop - clientHeight <= FOLLOW_SLACK_PX;
    this.section.hidden = false;
    this.box.append(text);
    this.chars += text.length;
    if (follow) this.box.scrollTop = this.box.scrollHeight;
  }

  /** The finished answer, from the terminal event: shown when no piece of it was. */
  finish(text) {
    if (this.chars === 0) this.add(text);
  }
}
