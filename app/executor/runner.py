"""The runner contract: what a runner gets, what it may do, and how it ends a task.

A runner is an object with a ``name`` and a ``run(task, ctx)`` method. ``run`` does the work,
reporting progress with ``ctx.emit(kind, data)`` (``ctx.emit_many`` for several at once), and
calls ``ctx.checkpoint()`` (or ``ctx.sleep()``, which is one) often enough to notice a cancel,
a timeout or a shutdown. It ends the task by returning: return the ``done`` event's data (a
dict, or None for ``{}``); raise :class:`TaskFailed` for ``failed``; let :class:`TaskStopped`
from a checkpoint propagate.
The executor writes the one terminal event; a runner never calls ``store.finish`` itself.
A runner that blocks on something other than a checkpoint (a child process, an HTTP stream)
watches ``ctx.stopping`` (a ``threading.Event``) and aborts that work when it is set.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from ..store import Event, Task, TaskStatus, TaskStore


class TaskFailed(Exception):
    """The runner could not do the task; ``reason`` is shown to the user."""

    def __init__(self, reason: str, **data: Any):
        super().__init__(reason)
        self.reason = reason
        self.data = data


class TaskStopped(Exception):
    """The task was stopped from outside: canceled (``canceled``), timed out or shut down
    (``failed``).

    A runner that had to undo work to stop (kill a process group) re-raises it with ``data``
    saying how; the terminal event carries it."""

    def __init__(self, status: TaskStatus, reason: str, **data: Any):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.data = data


class Runner(Protocol):
    name: str

    def run(self, task: Task, ctx: RunContext) -> dict[str, Any] | None:
        """Do the task's work; see the module docstring."""


class RunContext:
    """A running task's handle on the outside world: its event log and its stop signal."""

    def __init__(self, task: Task, store: TaskStore):
        self.task = task
        self._store = store
        self.stopping = threading.Event()
        self._stop: TaskStopped | None = None

    def emit(self, kind: str, data: dict[str, Any] | None = None) -> Event:
        """Append a progress event to the task's log."""
        return self._store.append_event(self.task.id, kind, data or {})

    def emit_many(self, events: list[tuple[str, dict[str, Any]]]) -> list[Event]:
        """Append several progress events at once, in order (one write where the store can)."""
        return self._store.append_events(self.task.id, events)

    def stop(self, status: TaskStatus, reason: str, **data: Any) -> None:
        """Ask the runner to stop (called by the executor); the first reason given wins.
        ``data`` goes into the terminal event beside the reason."""
        if self._stop is None:
            self._stop = TaskStopped(status, reason, **data)
        self.stopping.set()

    @property
    def stop_reason(self) -> TaskStopped | None:
        return self._stop

    def checkpoint(self) -> None:
        """Raise TaskStopped if the task was asked to stop."""
        if self._stop is not None:
            raise self._stop

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, waking at once (with TaskStopped) if the task is stopped."""
        self.stopping.wait(seconds)
        self.checkpoint()
