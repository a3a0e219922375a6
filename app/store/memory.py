"""The in-process store: dicts written under one lock, one event flag per task for waiting
streams, which read without the lock.

Serves one process only (gunicorn must run a single worker with it); everything is lost when
the process exits. Under gevent the lock and the flags are gevent's, so a waiting stream
yields to the loop instead of blocking it.
"""

from __future__ import annotations

import bisect
import dataclasses
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from .base import TERMINAL_KINDS, Event, Task, TaskFinished, TaskNotFound, TaskStatus, TaskStore


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _Record:
    __slots__ = ("task", "events", "event_ids", "arrived", "cancel_requested")

    def __init__(self, task: Task):
        self.task = task
        self.events: list[Event] = []
        self.event_ids: list[int] = []  # parallel to events, for bisect
        # Set, then replaced by a fresh one, at each append: every stream waiting on the task
        # wakes at once, without the lock, the per-wait waiter lock and the one-by-one
        # notify of a Condition, which cost much at 1,000 streams (docs/performance.md).
        self.arrived = threading.Event()
        self.cancel_requested = False


class MemoryStore(TaskStore):
    """Tasks and events in dicts; ids count from 1 like a fresh database."""

    def __init__(self, clock: Callable[[], datetime] = utcnow):
        self._clock = clock
        self._lock = threading.RLock()
        self._records: dict[int, _Record] = {}
        self._last_task_id = 0
        self._last_event_id = 0  # one sequence for all tasks, as in the database
        self._closed = False

    def check(self) -> None:
        return None

    def create_task(self, title, body, runner, extra=None):
        with self._lock:
            self._last_task_id += 1
            task = Task(id=self._last_task_id, title=title, status=TaskStatus.QUEUED,
                        created_at=self._clock(), body=body, runner=runner,
                        extra=dict(extra or {}))
            record = _Record(task)
            self._records[task.id] = record
            self._append(record, "created", {"body": body, "runner": runner, **task.extra})
            return task

    def get_task(self, task_id):
        with self._lock:
            return self._record(task_id).task

    def list_tasks(self, limit, status=None, before_id=None):
        with self._lock:
            found = []
            for task_id in sorted(self._records, reverse=True):
                if before_id is not None and task_id >= before_id:
                    continue
                task = self._records[task_id].task
                if status is None or task.status == status:
                    found.append(task)
                    if len(found) >= limit:
                        break
            return found

    def mark_running(self, task_id):
        with self._lock:
            record = self._record(task_id)
            if record.task.status.is_terminal:
                raise TaskFinished(task_id, record.task.status)
            event = self._append(record, "status", {"status": TaskStatus.RUNNING.value})
            record.task = dataclasses.replace(record.task, status=TaskStatus.RUNNING,
                                   started_at=event.created_at)
            return record.task

    def append_event(self, task_id, kind, data):
        if kind in TERMINAL_KINDS:
            raise ValueError(f"terminal event {kind!r} must go through finish()")
        with self._lock:
            return self._append(self._record(task_id), kind, data)

    def finish(self, task_id, status, data):
        status = TaskStatus(status)
        with self._lock:
            record = self._record(task_id)
            if record.task.status.is_terminal:
                raise TaskFinished(task_id, record.task.status)
            event = self._append(record, status.value, data)
            record.task = dataclasses.replace(
                record.task, status=status, finished_at=event.created_at,
                error=None if status == TaskStatus.DONE else data.get("reason"),
                cancel_requested=False)
            return event

    def request_cancel(self, task_id):
        ended = None
        with self._lock:
            record = self._record(task_id)
            status = record.task.status
            if status.is_terminal:
                raise TaskFinished(task_id, status)
            if status == TaskStatus.QUEUED:
                ended = self.finish(task_id, TaskStatus.CANCELED,
                                    {"reason": "canceled before it started"})
            else:
                record.cancel_requested = True
                record.task = dataclasses.replace(record.task, cancel_requested=True)
            task = record.task
        if ended is not None:  # told outside the lock: the listener may read the store
            self._task_ended(task_id, TaskStatus.CANCELED, ended.data, ended.created_at)
        return task

    def is_cancel_requested(self, task_id):
        with self._lock:
            return self._record(task_id).cancel_requested

    # Streams read a task's events without the lock, which every stream of a task would
    # otherwise take for every event (a seventh of the worker's time at 1,000 streams). That
    # is safe because the events only grow, by appends made under the lock in a fixed order
    # (the event, then its id, then the flag), and a list's append and slice are atomic.

    def events_after(self, task_id, after_id, limit=100):
        return _events_after(self._record(task_id), after_id, limit)

    def wait_events(self, task_id, after_id, timeout, limit=100):
        record = self._record(task_id)
        arrived = record.arrived  # before the ids: the append that adds an id sets this flag
        if record.event_ids[-1] <= after_id and not self._closed:
            arrived.wait(timeout)  # set by the next append, or by close()
        return _events_after(record, after_id, limit)

    def purge_finished(self, before, limit):
        with self._lock:
            ended = sorted((r.task.finished_at, task_id) for task_id, r in self._records.items()
                           if r.task.status.is_terminal and r.task.finished_at < before)
            for _, task_id in ended[:limit]:
                del self._records[task_id]
            return min(len(ended), limit)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for record in self._records.values():
                record.arrived.set()

    # -- internals: writers call these with the lock held -----------------------------------

    def _record(self, task_id: int) -> _Record:
        try:
            return self._records[task_id]
        except KeyError:
            raise TaskNotFound(f"task {task_id} not found") from None

    def _append(self, record: _Record, kind: str, data: dict[str, Any]) -> Event:
        self._last_event_id += 1
        event = Event(id=self._last_event_id, task_id=record.task.id, kind=kind,
                      created_at=self._clock(), data=data)
        record.events.append(event)
        record.event_ids.append(event.id)
        record.arrived.set()
        record.arrived = threading.Event()
        return event


def _events_after(record: _Record, after_id: int, limit: int) -> list[Event]:
    # event_ids may lag events by the one being appended: the slice then includes it.
    start = bisect.bisect_right(record.event_ids, after_id)
    return record.events[start:start + limit]
