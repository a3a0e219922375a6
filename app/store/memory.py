"""The in-process store: dicts written under one lock, one event flag per task for waiting
streams, which read without the lock.

Serves one process only (gunicorn must run a single worker with it); everything is lost when
the process exits. Under gevent the lock and the flags are gevent's, so a waiting stream
yields to the loop instead of blocking it.

Its own properties, beyond the contract:

- A memory budget (``max_bytes``, OPS_MEMORY_MAX_MB): each task is counted, in estimated
  bytes, with its events as they are appended; past the budget the tasks that ended first
  are evicted whole, with their events, and answer 404 as purged ones do (one log line
  each). Queued and running tasks are never evicted, so they may hold the store above it.
- A page of :meth:`~MemoryStore.list_tasks` costs in proportion to the page, whatever the
  filter: ids are kept in order (:mod:`.ordered`), all of them and per status.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from sys import getsizeof
from typing import Any

from .base import (
    TERMINAL_KINDS,
    WAITING,
    ClaimedElsewhere,
    Event,
    Task,
    TaskFinished,
    TaskNotFound,
    TaskStatus,
    TaskStore,
    cancel_stays_requested,
    canceled_data,
)
from .groups import MemoryGroupLocks
from .ordered import OrderedIds
from .workers import LocalWorkers

log = logging.getLogger(__name__)

# What the budget counts beyond an event's data: the Event, its attribute dict and datetime,
# its slots in the task's lists; and once per task, the Task, its record, flag and index
# entries (measured with tracemalloc, see docs/operations.md).
EVENT_OVERHEAD = 200
TASK_OVERHEAD = 1700
_FLAT = frozenset({str, int, float, bool, type(None)})


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _Record:
    __slots__ = ("task", "events", "event_ids", "arrived", "cancel_requested", "cancel_actor",
                 "size")

    def __init__(self, task: Task):
        self.task = task
        self.events: list[Event] = []
        self.event_ids: list[int] = []  # parallel to events, for bisect
        # Set, then replaced by a fresh one, at each append: every stream waiting on the task
        # wakes at once, without the lock, the per-wait waiter lock and the one-by-one
        # notify of a Condition, which cost much at 1,000 streams (docs/performance.md).
        self.arrived = threading.Event()
        self.cancel_requested = False
        self.cancel_actor: str | None = None
        self.size = TASK_OVERHEAD  # estimated bytes, the events' added as they are appended


class MemoryStore(TaskStore):
    """Tasks and events in dicts; ids count from 1 like a fresh database.

    ``max_bytes`` is the memory budget of the tasks and their events (None: none)."""

    def __init__(self, clock: Callable[[], datetime] = utcnow, max_bytes: int | None = None):
        self._clock = clock
        self._max_bytes = max_bytes
        self._lock = threading.RLock()
        self._records: dict[int, _Record] = {}
        self._bytes = 0  # the records' sizes summed
        # The ids of all tasks, and of the tasks in each status, in order: a page walks only
        # its own ids.
        self._ids = OrderedIds()
        self._by_status = {status: OrderedIds() for status in TaskStatus}
        self._by_creator: dict[str, OrderedIds] = {}
        # Terminal tasks in the order they ended: the budget evicts from the front.
        self._ended: dict[int, None] = {}
        self._last_task_id = 0
        self._last_event_id = 0  # one sequence for all tasks, as in the database
        self._closed = False
        self._group_locks = MemoryGroupLocks(ended=self._has_ended)
        self._workers = LocalWorkers()

    def check(self) -> None:
        return None

    def create_task(self, title, body, runner, extra=None, created_by=None):
        with self._lock:
            self._last_task_id += 1
            task = Task(id=self._last_task_id, title=title, status=TaskStatus.QUEUED,
                        created_at=self._clock(), body=body, runner=runner,
                        created_by=created_by, extra=dict(extra or {}))
            record = _Record(task)
            self._records[task.id] = record
            self._bytes += record.size
            self._ids.add(task.id)
            self._by_status[TaskStatus.QUEUED].add(task.id)
            data = {"body": body, "runner": runner, **task.extra}
            if created_by is not None:
                data["created_by"] = created_by
                self._by_creator.setdefault(created_by, OrderedIds()).add(task.id)
            self._append(record, "created", data)
        self._keep_budget()
        return task

    def get_task(self, task_id):
        with self._lock:
            return self._record(task_id).task

    def list_tasks(self, limit, status=None, before_id=None, created_by=None):
        with self._lock:
            if created_by is None:
                ids = self._ids if status is None else self._by_status[TaskStatus(status)]
                return [self._records[task_id].task for task_id in ids.before(limit, before_id)]
            ids = self._by_creator.get(created_by)
            tasks: list[Task] = []
            while ids is not None and len(tasks) < limit:  # the creator's ids, page by page
                page = ids.before(limit, before_id)
                tasks.extend(task for task in (self._records[i].task for i in page)
                             if status is None or task.status == status)
                if len(page) < limit:
                    break
                before_id = page[-1]
            return tasks[:limit]

    def claimable(self, limit, after_id=0):
        with self._lock:
            queued = self._by_status[TaskStatus.QUEUED].before(len(self._records))
            later = [t for t in reversed(queued) if t > after_id][:limit]
            return [self._records[t].task for t in later], len(queued)

    def mark_running(self, task_id, worker=None):
        with self._lock:
            record = self._record(task_id)
            if record.task.status.is_terminal:
                raise TaskFinished(task_id, record.task.status)
            if record.task.status == TaskStatus.RUNNING:
                raise ClaimedElsewhere(task_id)
            data = {"status": TaskStatus.RUNNING.value}
            if worker is not None:
                data["worker"] = worker
            event = self._append(record, "status", data)
            self._move(task_id, record.task.status, TaskStatus.RUNNING)
            record.task = dataclasses.replace(record.task, status=TaskStatus.RUNNING,
                                              started_at=event.created_at, waiting_for=None,
                                              worker=worker)
            task = record.task
        self._keep_budget()
        return task

    def append_event(self, task_id, kind, data):
        if kind in TERMINAL_KINDS:
            raise ValueError(f"terminal event {kind!r} must go through finish()")
        with self._lock:
            record = self._record(task_id)
            event = self._append(record, kind, data)
            if kind == WAITING and record.task.status == TaskStatus.QUEUED:
                record.task = dataclasses.replace(record.task,
                                                  waiting_for=data.get("waiting_for"))
        self._keep_budget()
        return event

    def finish(self, task_id, status, data):
        with self._lock:
            event = self._finish(self._record(task_id), TaskStatus(status), data)
        self._keep_budget()
        return event

    def request_cancel(self, task_id, actor=None):
        ended = None
        with self._lock:
            record = self._record(task_id)
            status = record.task.status
            if status.is_terminal:
                raise TaskFinished(task_id, status)
            if status == TaskStatus.QUEUED:
                ended = self._finish(record, TaskStatus.CANCELED,
                                     canceled_data("canceled before it started", actor))
            else:
                if not record.cancel_requested:
                    record.cancel_actor = actor
                record.cancel_requested = True
                record.task = dataclasses.replace(record.task, cancel_requested=True)
            task = record.task
        if ended is not None:  # told outside the lock: the listener may read the store
            self._keep_budget()
            self._task_ended(task_id, TaskStatus.CANCELED, ended.data, ended.created_at)
        return task

    def is_cancel_requested(self, task_id):
        with self._lock:
            return self._record(task_id).cancel_requested

    def cancel_requester(self, task_id):
        with self._lock:
            return self._record(task_id).cancel_actor

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
            old = []
            for task_id in self._ended:  # in the order they ended: stop at the first too young
                if len(old) >= limit or self._records[task_id].task.finished_at >= before:
                    break
                old.append(task_id)
            for task_id in old:
                self._delete(task_id)
            return len(old)

    def group_locks(self):
        return self._group_locks

    def worker_registry(self):
        return self._workers

    def _has_ended(self, task_id: int) -> bool:
        """Whether the task ended (a task evicted or purged has)."""
        record = self._records.get(task_id)
        return record is None or record.task.status.is_terminal

    @property
    def stored_bytes(self) -> int:
        """The estimated bytes of the tasks and their events, as the budget counts them."""
        return self._bytes

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for record in self._records.values():
                record.arrived.set()

    def _keep_budget(self) -> None:
        """Evict the tasks that ended first while the store exceeds its budget. Writers call
        it after releasing the lock, so that the log lines are written outside it."""
        if self._max_bytes is None or self._bytes <= self._max_bytes:
            return
        evicted = []
        with self._lock:
            while self._bytes > self._max_bytes and self._ended:
                task_id = next(iter(self._ended))
                evicted.append((task_id, self._delete(task_id)))
        for task_id, freed in evicted:
            log.warning("memory store: evicted finished task %s, %d bytes freed "
                        "(OPS_MEMORY_MAX_MB)", task_id, freed,
                        extra={"task_id": task_id, "bytes_freed": freed})

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
        size = EVENT_OVERHEAD + _size(data)
        record.size += size
        self._bytes += size
        record.arrived.set()
        record.arrived = threading.Event()
        return event

    def _finish(self, record: _Record, status: TaskStatus, data: dict[str, Any]) -> Event:
        if record.task.status.is_terminal:
            raise TaskFinished(record.task.id, record.task.status)
        event = self._append(record, status.value, data)
        self._move(record.task.id, record.task.status, status)
        self._ended[record.task.id] = None
        record.task = dataclasses.replace(
            record.task, status=status, finished_at=event.created_at,
            error=None if status == TaskStatus.DONE else data.get("reason"),
            canceled_by=data.get("canceled_by") if status == TaskStatus.CANCELED else None,
            cancel_requested=cancel_stays_requested(status, False), waiting_for=None)
        return event

    def _move(self, task_id: int, old: TaskStatus, new: TaskStatus) -> None:
        self._by_status[old].discard(task_id)
        self._by_status[new].add(task_id)

    def _delete(self, task_id: int) -> int:
        """Forget a task and its events; return their size."""
        record = self._records.pop(task_id)
        self._ended.pop(task_id, None)
        self._ids.discard(task_id)
        self._by_status[record.task.status].discard(task_id)
        creator = record.task.created_by
        if creator is not None:
            ids = self._by_creator[creator]
            ids.discard(task_id)
            if not ids:
                del self._by_creator[creator]
        self._bytes -= record.size
        record.arrived.set()  # a stream still waiting on it finds it gone
        return record.size


def _size(value: Any) -> int:
    """Estimated bytes of an event's data: its containers and what they hold."""
    size = getsizeof(value)
    if isinstance(value, dict):
        for key, item in value.items():
            # Most items are flat (text, numbers): sized here, without a call each.
            size += getsizeof(key) + (getsizeof(item) if type(item) in _FLAT else _size(item))
    elif isinstance(value, list | tuple):
        for item in value:
            size += getsizeof(item) if type(item) in _FLAT else _size(item)
    return size


def _events_after(record: _Record, after_id: int, limit: int) -> list[Event]:
    # event_ids may lag events by the one being appended: the slice then includes it.
    start = bisect.bisect_right(record.event_ids, after_id)
    return record.events[start:start + limit]
