"""A task's output as plain text: the lines of its ``log`` events, one per line, in order.

Where the output was cut (a ``log_cut`` event) a marker line stands for the lines left out;
while lines past the head are held (``log_held``, no tail written yet) a last marker line
says so. ``GET /ops/tasks/{id}/log`` sends it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..store import Event, TaskStore

PAGE_EVENTS = 100  # a page of log events is at most about 6 MiB of text


def event_pages(store: TaskStore, task_id: int, first: list[Event] | None = None
                ) -> Iterator[list[Event]]:
    """The task's events, page by page, oldest first (``first``: the first page, read)."""
    page = store.events_after(task_id, 0, PAGE_EVENTS) if first is None else first
    while page:
        yield page
        if len(page) < PAGE_EVENTS:
            return
        page = store.events_after(task_id, page[-1].id, PAGE_EVENTS)


def log_text(pages: Iterable[list[Event]], stream: str | None = None,
             since_line: int = 1) -> Iterator[str]:
    """The output's text, a chunk per event: lines numbered ``since_line`` on, of ``stream``
    only when given (both otherwise), with the marker lines."""
    held = None
    for page in pages:
        for event in page:
            data = event.data
            if event.kind == "log":
                held = None
                lines = data.get("lines") or []
                if stream not in (None, data.get("stream")) or not lines:
                    continue
                skip = max(0, since_line - data.get("first_line", 1))
                if skip < len(lines):
                    yield "\n".join(lines[skip:]) + "\n"
            elif event.kind == "log_cut":
                held = None
                if since_line <= data.get("after_line", 0) + data.get("lines_left_out", 0):
                    yield cut_line(data) + "\n"
            elif event.kind == "log_held":
                held = data
    if held is not None:
        yield (f"[… output past this point is held; its last {held.get('tail_bytes', 0):,} "
               "bytes are written when the command ends …]\n")


def cut_line(data: dict) -> str:
    """The marker line that stands for the lines a ``log_cut`` event left out."""
    return (f"[… {data.get('lines_left_out', 0):,} lines ({data.get('bytes_left_out', 0):,} "
            f"bytes) left out: lines {data.get('after_line', 0) + 1:,} to "
            f"{data.get('after_line', 0) + data.get('lines_left_out', 0):,} …]")
