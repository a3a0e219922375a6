"""Concurrency groups in one process: which of its tasks wait for their group, and when each
may go on the executor's queue.

A task of a group takes the group's lock (:mod:`app.store.groups`) when it is submitted, and
gives it back when it ends, however it ends. A task that cannot take it is *parked*: it stays
``queued`` without a place on the queue, so that it holds no worker, and goes on the queue
once it holds the lock: at once when a task of this process gives the group back, at the
executor watcher's pace when the holder runs in another process. What a task does when its
group is busy is its recipe's policy: wait (``queue``), be refused (``reject``:
:class:`GroupBusy`) or cancel the holder (``cancel-running``).
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

from ..store import WAITING, Task, TaskFinished, TaskNotFound, TaskStore
from ..store.groups import GroupLocks

log = logging.getLogger(__name__)


class GroupBusy(Exception):
    """A recipe whose policy is ``reject`` was asked for while a task holds its group."""

    def __init__(self, group: str, task_id: int):
        super().__init__(f"group {group} is busy with task {task_id}")
        self.group = group
        self.task_id = task_id


class GroupGate:
    """The parked tasks of this process, by group. ``enqueue(task_id)`` puts a task on the
    executor's queue; ``cancel(task_id, actor)`` is the executor's cancel."""

    def __init__(self, store: TaskStore, locks: GroupLocks, *,
                 enqueue: Callable[[int], None], cancel: Callable[[int, str], Any],
                 closing: threading.Event):
        self.store = store
        self.locks = locks
        self._enqueue = enqueue
        self._cancel = cancel
        self._closing = closing
        self._lock = threading.Lock()
        self._groups: dict[int, str] = {}  # this process's unfinished tasks with a group
        self._parked: dict[str, list[int]] = {}  # per group, the tasks waiting, oldest first
        self._waiting_for: dict[int, int | None] = {}  # what each one's last waiting event said

    def refuse_if_busy(self, group: str) -> None:
        """GroupBusy if a task holds the group (the ``reject`` policy)."""
        holder = self.locks.holder(group)
        if holder is not None:
            raise GroupBusy(group, holder)

    def group_of(self, task_id: int) -> str | None:
        with self._lock:
            return self._groups.get(task_id)

    def take_parked(self) -> list[int]:
        """Every parked task, no longer parked (the executor fails them at shutdown)."""
        with self._lock:
            taken = [task_id for ids in self._parked.values() for task_id in ids]
            self._parked.clear()
            return taken

    def enter(self, task: Task, group: str, policy: str, actor: str | None) -> Task:
        """Queue the task if it takes its group's lock; else park it (and, by the policy
        ``cancel-running``, cancel the holder). Return the task as it is now."""
        with self._lock:
            self._groups[task.id] = group
            # Parked before it asks: a holder that gives the group back meanwhile wakes it.
            parked = self._parked.setdefault(group, [])
            bisect.insort(parked, task.id)
            first = parked[0]
        if first != task.id:
            self._wake(group)  # an older parked task of the group asks first
        with self._lock:
            if task.id not in self._parked.get(group, ()):
                return task  # it holds the lock and is on the queue
        try:
            waits_for = self.locks.acquire(group, task.id)
        except Exception as error:  # the store is away: the watcher asks again
            log.warning("task %s: could not take concurrency group %s yet: %s", task.id,
                        group, error)
            return task
        if waits_for is None:
            self.unpark(task.id, group)
            return task
        if policy == "cancel-running":
            self.cancel_holder(group, actor or f"task {task.id}")
        self._note_waiting(task.id, group, waits_for)
        with self._lock:
            if task.id not in self._parked.get(group, ()):
                return task
        return dataclasses.replace(task, waiting_for=waits_for)

    def hold(self, task_id: int, group: str) -> None:
        """A task of the shared queue, claimed here, holds its group's lock: ``leave``
        gives it back."""
        with self._lock:
            self._groups[task_id] = group

    def cancel_holder(self, group: str, actor: str) -> None:
        """Cancel the task holding the group (``cancel-running``), naming ``actor``."""
        try:
            holder = self.locks.holder(group)
            if holder is not None:
                log.info("task %s: canceled by %s for its concurrency group %s", holder,
                         actor, group)
                self._cancel(holder, actor)
        except (TaskFinished, TaskNotFound):
            pass  # it ended meanwhile: the group is given back
        except Exception as error:
            log.warning("concurrency group %s: could not cancel its holder: %s", group, error)

    def _note_waiting(self, task_id: int, group: str, waits_for: int | None) -> None:
        """Write a ``waiting`` event when what the task waits for changed."""
        with self._lock:
            if task_id not in self._parked.get(group, ()):
                return  # it holds the lock now (or ended): it waits no more
            if task_id in self._waiting_for and self._waiting_for[task_id] == waits_for:
                return
            if waits_for is None and task_id not in self._waiting_for:
                return
            self._waiting_for[task_id] = waits_for
        try:
            self.store.append_event(task_id, WAITING,
                                    {"waiting_for": waits_for, "concurrency_group": group})
        except Exception as error:
            log.warning("task %s: could not record what it waits for: %s", task_id, error)

    def unpark(self, task_id: int, group: str, ended: bool = False) -> bool:
        """Put a parked task on the queue; False if it was not parked (any more). A task
        that ``ended`` gets no more events."""
        with self._lock:
            parked = self._parked.get(group)
            if not parked or task_id not in parked:
                return False
            parked.remove(task_id)
            if not parked:
                del self._parked[group]
            waited = self._waiting_for.pop(task_id, None) is not None
        if waited and not ended:
            self._note_waiting_done(task_id, group)
        self._enqueue(task_id)
        return True

    def _note_waiting_done(self, task_id: int, group: str) -> None:
        try:
            self.store.append_event(task_id, WAITING,
                                    {"waiting_for": None, "concurrency_group": group})
        except TaskFinished:
            pass
        except Exception as error:
            log.warning("task %s: could not record that it waits no more: %s", task_id, error)

    def _wake(self, group: str) -> None:
        """Let the oldest parked task of the group take the lock, if it can now."""
        if self._closing.is_set():
            return
        with self._lock:
            parked = self._parked.get(group)
            first = parked[0] if parked else None
        if first is None:
            return
        try:
            waits_for = self.locks.acquire(group, first)
        except Exception as error:
            log.warning("task %s: could not take concurrency group %s yet: %s", first, group,
                        error)
            return
        if waits_for is None:
            self.unpark(first, group)
        else:
            self._note_waiting(first, group, waits_for)

    def leave(self, task_id: int) -> None:
        """The task ended (or will never run here): give its group back, wake the next."""
        with self._lock:
            group = self._groups.pop(task_id, None)
            self._waiting_for.pop(task_id, None)
        if group is None:
            return
        try:
            self.locks.release(group, task_id)
        except Exception as error:  # it is taken over as stale once the task shows as ended
            log.warning("task %s: could not give back concurrency group %s: %s", task_id,
                        group, error)
        self._wake(group)

    def recheck(self) -> None:
        """The watcher's round: a parked task canceled from elsewhere goes to the queue (a
        worker then finds it ended), and each group's next task asks for the lock again
        (its holder may run in another process)."""
        with self._lock:
            parked = {group: list(ids) for group, ids in self._parked.items()}
        for group, ids in parked.items():
            for task_id in ids:
                try:
                    ended = self.store.get_task(task_id).status.is_terminal
                except TaskNotFound:
                    ended = True
                except Exception:
                    ended = False
                if ended:
                    self.unpark(task_id, group, ended=True)
            self._wake(group)

