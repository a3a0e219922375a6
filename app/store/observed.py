"""A store wrapper that counts and logs what happens to tasks.

Every change of a task's state is a store write (see :mod:`app.store.base`), so this is the
one place that sees them all, whichever backend runs underneath: it logs one line per state
change (task id, runner, time spent in the previous state) and keeps the task, event and
store-error metrics. Calls it does not know (a backend's extras) pass straight through.

Queue depth and running tasks are this process's own: a task counts as queued from its
creation here until this process's executor takes it from the queue (to run it, or to find
it already canceled), and as running until it ends here.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from ..metrics import Metrics
from .base import Event, StoreUnavailable, Task, TaskStatus, TaskStore

log = logging.getLogger("app.tasks")

MAX_REASON = 200


class ObservedStore:
    """Wraps ``inner`` (any :class:`TaskStore`), with the same methods."""

    def __init__(self, inner: TaskStore, metrics: Metrics):
        self.inner = inner
        self._metrics = metrics
        self._lock = threading.Lock()
        self._queued: dict[int, Task] = {}
        self._running: dict[int, Task] = {}

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

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
                   before_id: int | None = None) -> list[Task]:
        return self._call("list_tasks", limit, status, before_id)

    def is_cancel_requested(self, task_id: int) -> bool:
        return self._call("is_cancel_requested", task_id)

    def events_after(self, task_id: int, after_id: int, limit: int = 100) -> list[Event]:
        return self._call("events_after", task_id, after_id, limit)

    def wait_events(self, task_id: int, after_id: int, timeout: float,
                    limit: int = 100) -> list[Event]:
        return self._call("wait_events", task_id, after_id, timeout, limit)

    def close(self) -> None:
        self.inner.close()

    # -- writes -----------------------------------------------------------------------------

    def create_task(self, title: str, body: str | None, runner: str,
                    extra: dict[str, Any] | None = None) -> Task:
        task = self._call("create_task", title, body, runner, extra)
        with self._lock:
            self._queued[task.id] = task
        m = self._metrics
        m.tasks_created.labels(runner).inc()
        m.events_written.inc()
        m.tasks_queued.inc()
        _log_change(task.id, TaskStatus.QUEUED, runner, None)
        return task

    def mark_running(self, task_id: int) -> Task:
        try:
            task = self._call("mark_running", task_id)
        finally:
            self._leave_queue(task_id)  # whatever happened, the executor took it off its queue
        with self._lock:
            self._running[task_id] = task
        self._metrics.tasks_running.inc()
        self._metrics.events_written.inc()
        _log_change(task_id, TaskStatus.RUNNING, task.runner,
                    _seconds(task.created_at, task.started_at))
        return task

    def append_event(self, task_id: int, kind: str, data: dict[str, Any]) -> Event:
        event = self._call("append_event", task_id, kind, data)
        self._metrics.events_written.inc()
        return event

    def finish(self, task_id: int, status: TaskStatus, data: dict[str, Any]) -> Event:
        event = self._call("finish", task_id, status, data)
        with self._lock:
            task = self._running.pop(task_id, None)
            was_running = task is not None
            if task is None:
                task = self._queued.pop(task_id, None)
        if was_running:
            self._metrics.tasks_running.dec()
        elif task is not None:
            self._metrics.tasks_queued.dec()
        self._ended(task_id, TaskStatus(status), task, event.created_at, data)
        return event

    def request_cancel(self, task_id: int) -> Task:
        task = self._call("request_cancel", task_id)
        if task.status == TaskStatus.CANCELED:  # it was queued: canceled at once
            self._ended(task_id, task.status, task, task.finished_at, {})
        return task

    # -- bookkeeping ------------------------------------------------------------------------

    def _leave_queue(self, task_id: int) -> None:
        with self._lock:
            queued = self._queued.pop(task_id, None)
        if queued is not None:
            self._metrics.tasks_queued.dec()

    def _ended(self, task_id: int, status: TaskStatus, task: Task | None,
               finished_at: datetime | None, data: dict[str, Any]) -> None:
        self._metrics.events_written.inc()
        self._metrics.tasks_finished.labels(status.value).inc()
        since = task and (task.started_at or task.created_at)
        _log_change(task_id, status, task.runner if task else None, _seconds(since, finished_at),
                    data.get("reason"))


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def _log_change(task_id: int, status: TaskStatus, runner: str | None, duration: float | None,
                reason: Any = None) -> None:
    """One line per state change; ``duration`` is the time spent in the previous state."""
    fields = {"task_id": task_id, "status": status.value, "runner": runner or "-",
              "duration_s": duration}
    text = f"task {task_id} {status.value} runner={runner or '-'}"
    if duration is not None:
        text += f" duration={duration:.3f}s"
    if reason:
        fields["reason"] = str(reason)[:MAX_REASON]
        text += f" reason={fields['reason']!r}"
    level = logging.WARNING if status == TaskStatus.FAILED else logging.INFO
    log.log(level, "%s", text, extra=fields)
