"""A generator that turns a task's event log into a Server-Sent Events body.

It replays stored events after the client's last id, then waits on the store for new ones,
sending a comment heartbeat when idle, and returns right after the terminal event. Everything
it needs is passed in: it runs after the view has returned, outside the request context.
A client that went away is noticed at the next write (event or heartbeat): the server closes
the generator, ``GeneratorExit`` is raised at the ``yield`` and ``finally`` tidies up.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator

from ..store import Event, StoreUnavailable, TaskStore, TERMINAL_KINDS

log = logging.getLogger(__name__)

PAGE = 100
HEARTBEAT = ": ping\n\n"


def format_event(event: Event) -> str:
    """One SSE message: ``id``, ``event`` (the kind) and one line of JSON ``data``."""
    data = json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False)
    return f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n"


class StreamTracker:
    """Counts the streams open in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open = 0

    def opened(self) -> None:
        with self._lock:
            self.open += 1

    def closed(self) -> None:
        with self._lock:
            self.open -= 1


def event_stream(store: TaskStore, task_id: int, last_id: int, *, finished: bool,
                 heartbeat: float, retry_ms: int, tracker: StreamTracker) -> Iterator[str]:
    """Yield the SSE body for ``task_id`` from event ``last_id`` on.

    ``finished`` says the task was already terminal when the client asked, so that the
    stream ends once the stored events are replayed instead of waiting for more."""
    tracker.opened()
    try:
        yield f"retry: {retry_ms}\n\n"
        while True:
            try:
                events = store.wait_events(task_id, last_id, 0 if finished else heartbeat, PAGE)
                if not events and (finished or _ended_before(store, task_id, last_id)):
                    return
            except StoreUnavailable as error:
                log.warning("stream of task %s: store unavailable: %s", task_id, error)
                yield ": store unavailable, retrying\n\n"
                time.sleep(min(heartbeat, 1.0))
                continue
            if not events:
                yield HEARTBEAT
                continue
            chunk = []
            for event in events:
                chunk.append(format_event(event))
                last_id = event.id
                if event.kind in TERMINAL_KINDS:
                    yield "".join(chunk)
                    return
            yield "".join(chunk)
    finally:
        tracker.closed()


def _ended_before(store: TaskStore, task_id: int, last_id: int) -> bool:
    """True when the task is terminal and nothing after ``last_id`` remains to be sent
    (a client resuming past the end, or with an id from elsewhere)."""
    if not store.get_task(task_id).status.is_terminal:
        return False
    return not store.events_after(task_id, last_id, 1)
