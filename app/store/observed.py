"""A store wrapper that counts and logs what happens to tasks.

Every change of a task's state is a store write (see :mod:`app.store.base`), so this is the
one place that sees them all, whichever backend runs underneath: it logs one line per state
change (task id, runner, time spent in the previous state) and keeps the task, event and
store-error metrics. Endings it does not ask for itself (a queued task's cancel, an orphan
ended by the Supabase sweep) reach it through the backend's end listener, so each ending is
counted and logged once, by the process that wrote it.

How many tasks are queued and running is the executor's own count, not this wrapper's
(``Executor(on_counts=...)``).

A :class:`TaskObserver` given to :meth:`ObservedStore.observe` (the notifications, which
``create_app`` wires in: this layer imports nothing above it) hears of each start written
here and of each ending this process wrote, the backend's own included: so exactly one
process reports each ending.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .base import Event, StoreUnavailable, Task, TaskStatus, TaskStore

if TYPE_CHECKING:
    from ..metrics import Metrics
    from .groups import GroupLocks
    from .workers import WorkerRegistry

log = logging.getLogger("app.tasks")

MAX_REASON = 200


class TaskObserver:
    """Told of state changes as they pass through; both calls run in the writer's thread,
    after the write, and must return at once (queue the work, do it elsewhere)."""

    def task_started(self, task: Task) -> None:
        """``task`` (as ``mark_running`` returned it) started in this process."""

    def task_ended(self, task_id: int, status: TaskStatus, data: dict[str, Any],
                   finished_at: datetime | None) -> None:
        """This process wrote the task's ending (``data``: its terminal event's)."""


class ObservedStore(TaskStore):
    """Wraps ``inner`` (any :class:`TaskStore`) and is a store itself."""

    def __init__(self, inner: TaskStore, metrics: Metrics):
        self.inner = inner
        self._metrics = metrics
        self._lock = threading.Lock()
        # The tasks created or started here that have not ended yet, as last written: the
        # runner and the start time their next log line reports.
        self._live: dict[int, Task] = {}
        self._observers: tuple[TaskObserver, ...] = ()
        inner.on_task_ended(self._ended_inside)

    def observe(self, observer: TaskObserver) -> None:
        """Tell ``observer`` of every start and ending written from now on."""
        self._observers = (*self._observers, observer)

    @property
    def cancel_poll_seconds(self) -> float | None:
        return self.inner.cancel_poll_seconds

    @property
    def backend_name(self) -> str:
        return self.inner.backend_name

    @property
    def shared_queue(self) -> bool:
        return self.inner.shared_queue

    def _call(self, operation: str, *args):
        try:
            return getattr(self.inner, operation)(*args)
        except StoreUnavailable:
            self._metrics.store_errors.labels(operation).inc()
            raise

    # -- reads ------------------------------------------------------------------------------

    def check(self) -> None:
        return self._call("check")

    def get_task(self, task_id: int) -> Task:
        return self._call("get_task", task_id)

    def list_tasks(self, limit: int, status: TaskStatus | None = None,
                   before_id: int | None = None, created_by: str | None = None) -> list[Task]:
        return self._call("list_tasks", limit, status, before_id, created_by)

    def claimable(self, limit: int, after_id: int = 0) -> tuple[list[Task], int]:
        return self._call("claimable", limit, after_id)

    def is_cancel_requested(self, task_id: int) -> bool:
        return self._call("is_cancel_requested", task_id)

    def cancel_requester(self, task_id: int) -> str | None:
        return self._call("cancel_requester", task_id)

    def events_after(self, task_id: int, after_id: int, limit: int = 100) -> list[Event]:
        return self._call("events_after", task_id, after_id, limit)

    def wait_events(self, task_id: int, after_id: int, timeout: float,
                    limit: int = 100) -> list[Event]:
        # Called directly, not through _call: every idle stream waits here, and a call with
        # *args is a level of C stack that each stream's parked greenlet keeps a copy of.
        try:
            return self.inner.wait_events(task_id, after_id, timeout, limit)
        except StoreUnavailable:
            self._metrics.store_errors.labels("wait_events").inc()
            raise

    def purge_finished(self, before: datetime, limit: int) -> int:
        return self._call("purge_finished", before, limit)

    def group_locks(self) -> GroupLocks:
        return self.inner.group_locks()

    def worker_registry(self) -> WorkerRegistry:
        return self.inner.worker_registry()

    def close(self) -> None:
        self.inner.close()

    # -- writes -----------------------------------------------------------------------------

    def create_task(self, title: str, body: str | None, runner: str,
                    extra: dict[str, Any] | None = None, created_by: str | None = None) -> Task:
        task = self._call("create_task", title, body, runner, extra, created_by)
        with self._lock:
            self._live[task.id] = task
        self._metrics.tasks_created.labels(runner).inc()
        self._metrics.events_written.inc()
        _log_change(task.id, TaskStatus.QUEUED, runner, None, actor=created_by)
        return task

    def mark_running(self, task_id: int, worker: str | None = None) -> Task:
        try:
            task = self._call("mark_running", task_id, worker)
        except Exception:
            self._forget(task_id)  # it will not run here; whoever ended it told its end
            raise
        with self._lock:
            self._live[task_id] = task
        self._metrics.events_written.inc()
        _log_change(task_id, TaskStatus.RUNNING, task.runner,
                    _seconds(task.created_at, task.started_at))
        for observer in self._observers:
            _tell(observer.task_started, task)
        return task

    def append_event(self, task_id: int, kind: str, data: dict[str, Any]) -> Event:
        event = self._call("append_event", task_id, kind, data)
        self._metrics.events_written.inc()
        return event

    def append_events(self, task_id: int, events: list[tuple[str, dict[str, Any]]]
                      ) -> list[Event]:
        stored = self._call("append_events", task_id, events)
        self._metrics.events_written.inc(len(stored))
        return stored

    def finish(self, task_id: int, status: TaskStatus, data: dict[str, Any]) -> Event:
        try:
            event = self._call("finish", task_id, status, data)
        finally:
            task = self._forget(task_id)
        self._ended(task_id, TaskStatus(status), task, data, event.created_at)
        return event

    def request_cancel(self, task_id: int, actor: str | None = None) -> Task:
        # A queued task's cancel is an ending the backend writes: _ended_inside hears of it.
        return self._call("request_cancel", task_id, actor)

    # -- bookkeeping ------------------------------------------------------------------------

    def _forget(self, task_id: int) -> Task | None:
        with self._lock:
            return self._live.pop(task_id, None)

    def _ended_inside(self, task_id: int, status: TaskStatus, data: dict[str, Any],
                      finished_at: datetime) -> None:
        """The backend's end listener: an ending it wrote without a finish() from here."""
        task = self._forget(task_id)
        if task is None:  # created by another process: its runner and times are in the store
            try:
                task = self.inner.get_task(task_id)
            except Exception as error:
                log.debug("task %s: not read for its log line: %s", task_id, error)
        self._ended(task_id, status, task, data, finished_at)
        self._task_ended(task_id, status, data, finished_at)

    def _ended(self, task_id: int, status: TaskStatus, task: Task | None,
               data: dict[str, Any], finished_at: datetime | None) -> None:
        self._metrics.events_written.inc()
        self._metrics.tasks_finished.labels(status.value).inc()
        since = task and (task.started_at or task.created_at)
        _log_change(task_id, status, task.runner if task else None, _seconds(since, finished_at),
                    data.get("reason"), data.get("canceled_by"))
        for observer in self._observers:
            _tell(observer.task_ended, task_id, status, data, finished_at)


def _tell(call, *args) -> None:
    """An observer's failure is logged; the write it heard of stands."""
    try:
        call(*args)
    except Exception:
        log.exception("a task observer failed")


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def _log_change(task_id: int, status: TaskStatus, runner: str | None, duration: float | None,
                reason: Any = None, actor: str | None = None) -> None:
    """One line per state change; ``duration`` is the time spent in the previous state,
    ``actor`` who caused it (the creator of a queued task, the canceler of a canceled one)."""
    fields = {"task_id": task_id, "status": status.value, "runner": runner or "-",
              "duration_s": duration}
    text = f"task {task_id} {status.value} runner={runner or '-'}"
    if actor is not None:
        fields["actor"] = actor
        text += f" actor={actor!r}"
    if duration is not None:
        text += f" duration={duration:.3f}s"
    if reason:
        fields["reason"] = str(reason)[:MAX_REASON]
        text += f" reason={fields['reason']!r}"
    level = logging.WARNING if status == TaskStatus.FAILED else logging.INFO
    log.log(level, "%s", text, extra=fields)
