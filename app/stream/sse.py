"""A generator that turns a task's event log into a Server-Sent Events body.

It replays stored events after the client's last id, then waits on the store for new ones,
sending a comment heartbeat when idle, and returns right after the terminal event. Everything
it needs is passed in: it runs after the view has returned, outside the request context.
A client that went away is noticed at the next write (event or heartbeat): the server closes
the generator, ``GeneratorExit`` is raised at the ``yield`` and ``finally`` tidies up.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator

from ..store import TERMINAL_KINDS, Event, StoreUnavailable, TaskNotFound, TaskStore

log = logging.getLogger(__name__)

PAGE = 100
HEARTBEAT = b": ping\n\n"


# The text of the events formatted last, shared by the streams that send them (a live event
# goes to all its task's streams within moments). Bounded, oldest out first: kept on every
# stored event, it doubled the memory of a large one (docs/operations.md). Streams of a live
# event ask for it within moments of each other, so a small cache serves them all, and a
# process's memory stays level once it is full.
CACHE_BYTES = 2 * 1024 * 1024
ENTRY_BYTES = 200  # what an entry costs beside its text: the dict slot, the tuple, the key
_cache: dict[int, tuple[Event, str]] = {}  # by id(event); the entry holds the event, so the
_cache_lock = threading.Lock()             # id is not reused while the entry lives
_cache_size = 0


def format_event(event: Event) -> str:
    """One SSE message: ``id``, ``event`` (the kind) and one line of JSON ``data``.

    Formatted once per event while it is among the last :data:`CACHE_BYTES` formatted,
    however many streams send it."""
    cached = _cache.get(id(event))
    if cached is not None and cached[0] is event:
        return cached[1]
    # ASCII-only JSON: a lone surrogate from a runner's output must not make the text
    # impossible to encode and so break this task's stream for good.
    data = json.dumps(event.to_dict(), separators=(",", ":"))
    text = f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n"
    _remember(event, text)
    return text


def _remember(event: Event, text: str) -> None:
    global _cache_size
    with _cache_lock:
        replaced = _cache.pop(id(event), None)  # formatted twice at once, or a reused id
        _cache_size += len(text) + ENTRY_BYTES - (len(replaced[1]) + ENTRY_BYTES
                                                  if replaced else 0)
        _cache[id(event)] = (event, text)
        while _cache_size > CACHE_BYTES:
            _cache_size -= len(_cache.pop(next(iter(_cache)))[1]) + ENTRY_BYTES


class TooManyStreams(Exception):
    """This process serves its maximum of streams (503 with Retry-After)."""


class TooManyTaskStreams(Exception):
    """This task has its maximum of streams opened with stream tokens (429 with Retry-After)."""


class StreamsClosing(Exception):
    """The process is shutting down and opens no stream (503)."""


# The share of ``limit`` that streams opened with a stream token may not take: a tenth.
ADMIN_RESERVE_DIVISOR = 10


class StreamTracker:
    """Counts this process's open streams, caps them, and ends them all at shutdown.

    A stream opened with the admin credential is refused only at ``limit``. One opened with a
    stream token is also refused when its task has ``per_task`` of them (429), and once
    ``limit`` minus the reserve (``limit // 10``) streams are open (503): a leaked token can
    take neither a task's nor the process's every slot, and admins still get in.
    ``gauge`` (anything with ``inc()`` and ``dec()``, such as a Prometheus gauge) follows the
    count."""

    def __init__(self, limit: int | None = None, gauge=None, *,
                 per_task: int | None = None) -> None:
        self._lock = threading.Lock()
        self._all_closed = threading.Condition(self._lock)
        self.limit = limit
        self.per_task = per_task
        self.reserve = limit // ADMIN_RESERVE_DIVISOR if limit is not None else 0
        self.open = 0
        self._by_task: dict[int, int] = {}  # open streams opened with a stream token
        self.closing = False
        self._gauge = gauge

    def admit(self, task_id: int, *, admin: bool) -> Callable[[], None]:
        """Count a new stream of ``task_id`` in, or refuse it; ``admin`` says the admin
        credential opened it. Returns the function to call once, when the stream closes."""
        with self._lock:
            if self.closing:
                raise StreamsClosing("the server is shutting down; reconnect with Last-Event-ID")
            if self.limit is not None and self.open >= self.limit:
                raise TooManyStreams(f"this server already serves {self.limit} streams; "
                                     "retry shortly")
            if not admin:
                held = self._by_task.get(task_id, 0)
                if self.per_task is not None and held >= self.per_task:
                    raise TooManyTaskStreams(f"task {task_id} already has {self.per_task} "
                                             "streams opened with stream tokens; retry shortly")
                if self.limit is not None and self.open >= self.limit - self.reserve:
                    raise TooManyStreams(f"this server already serves {self.open} streams (the "
                                         f"last {self.reserve} are kept for the admin token); "
                                         "retry shortly")
                self._by_task[task_id] = held + 1
            self.open += 1
        if self._gauge is not None:
            self._gauge.inc()
        return functools.partial(self._release, task_id, admin)

    def _release(self, task_id: int, admin: bool) -> None:
        with self._lock:
            self.open -= 1
            if not admin:
                held = self._by_task.pop(task_id) - 1
                if held:
                    self._by_task[task_id] = held
            if self.open == 0:
                self._all_closed.notify_all()
        if self._gauge is not None:
            self._gauge.dec()

    def task_streams(self, task_id: int) -> int:
        """Streams of ``task_id`` open with a stream token."""
        return self._by_task.get(task_id, 0)

    def close_all(self) -> None:
        """Make every stream end after its current wait (they check ``closing``)."""
        self.closing = True

    def wait_closed(self, timeout: float) -> bool:
        """Wait until no stream is open (their responses are closed); False after ``timeout``."""
        with self._lock:
            return self._all_closed.wait_for(lambda: self.open == 0, timeout)


def event_stream(store: TaskStore, task_id: int, last_id: int, *, finished: bool,
                 heartbeat: float, retry_ms: int, max_seconds: float, tracker: StreamTracker,
                 clock: Callable[[], float] = time.monotonic) -> Iterator[bytes]:
    """Yield the SSE body for ``task_id`` from event ``last_id`` on, encoded (the server
    writes it as it comes: no layer of the framework re-encodes it).

    ``finished`` says the task was already terminal when the client asked, so that the
    stream ends once the stored events are replayed instead of waiting for more. After
    ``max_seconds``, or when the tracker is closing, the stream ends between two events and
    the client resumes with ``Last-Event-ID``."""
    deadline = clock() + max_seconds
    outage = False
    yield f"retry: {retry_ms}\n\n".encode()
    while True:
        wait = 0 if finished else min(heartbeat, max(0.0, deadline - clock()))
        try:
            events = store.wait_events(task_id, last_id, wait, PAGE)
            if not events and (tracker.closing or finished
                               or _ended_before(store, task_id, last_id)):
                return  # (closing: the store may be closed too, so ask it nothing more)
        except TaskNotFound:  # deleted meanwhile (retention, or the memory budget)
            return
        except StoreUnavailable as error:
            if not outage:  # once per outage, not once a second
                log.warning("stream of task %s: store unavailable, retrying: %s", task_id, error)
            outage = True
            yield b": store unavailable, retrying\n\n"
            time.sleep(min(heartbeat, 1.0))
            continue
        if outage:
            log.info("stream of task %s: store reachable again", task_id)
            outage = False
        if events:
            chunk = []
            for event in events:
                chunk.append(format_event(event))
                last_id = event.id
                if event.kind in TERMINAL_KINDS:
                    yield "".join(chunk).encode()
                    return
            yield "".join(chunk).encode()
        if tracker.closing or clock() >= deadline:
            return
        if not events:
            yield HEARTBEAT


def _ended_before(store: TaskStore, task_id: int, last_id: int) -> bool:
    """True when the task is terminal and nothing after ``last_id`` remains to be sent
    (a client resuming past the end, or with an id from elsewhere)."""
    if not store.get_task(task_id).status.is_terminal:
        return False
    return not store.events_after(task_id, last_id, 1)
