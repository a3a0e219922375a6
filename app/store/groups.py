"""Concurrency groups: one task at a time per group, in the order the tasks were created.

A recipe may name a group (``concurrency = "deploy-{service}"``); its tasks take the group's
lock before they run and give it back when they end, however they end. The contract is
:class:`GroupLocks`, documented here once; :class:`MemoryGroupLocks` serves one process (the
in-process store), and ``app.store.supabase.groups`` shares the locks between every process
of a Supabase store through the ``va_concurrency_locks`` table. ``tests/test_group_locks.py``
runs the same tests against both.

A task that asked for the lock and was refused is *waiting*: it keeps its place (a younger
task of the group cannot overtake it) until it takes the lock or gives up its place with
:meth:`GroupLocks.release`. Which tasks wait is each backend's business: the in-process one
keeps the refused tasks, the Supabase one counts every ``queued`` task of the group.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class GroupLocks:
    """The locks of the concurrency groups. Safe to call from many threads/greenlets; the
    methods raise :class:`~app.store.base.StoreUnavailable` when the backend cannot answer."""

    def acquire(self, group: str, task_id: int) -> int | None:
        """Take ``group``'s lock for the task when it is free and no older task of the group
        waits. Return None when the task holds the lock (now, or already); else the id of
        the task it waits for: the holder, or, while none holds it, the oldest waiting task.
        A refused task is waiting from then on."""
        raise NotImplementedError

    def release(self, group: str, task_id: int) -> None:
        """Give back the lock if the task holds it, and its place among the waiting tasks.
        Harmless when it has neither."""
        raise NotImplementedError

    def holder(self, group: str) -> int | None:
        """The task holding ``group``'s lock; None when it is free (a lock whose task has
        ended without giving it back counts as free)."""
        raise NotImplementedError


class MemoryGroupLocks(GroupLocks):
    """The locks of one process, under one lock. ``ended(task_id)`` says whether a task has
    ended (the in-process store answers), so that a lock not yet given back by a task that
    has just ended counts as free, as in the Supabase backend."""

    def __init__(self, ended: Callable[[int], bool] = lambda task_id: False) -> None:
        self._ended = ended
        self._lock = threading.Lock()
        self._holders: dict[str, int] = {}
        self._waiting: dict[str, set[int]] = {}

    def _holder(self, group: str) -> int | None:
        """The live holder (a stale one is dropped); the lock is held."""
        holder = self._holders.get(group)
        if holder is not None and self._ended(holder):
            del self._holders[group]
            return None
        return holder

    def acquire(self, group, task_id):
        with self._lock:
            holder = self._holder(group)
            if holder == task_id:
                return None
            waiting = self._waiting.setdefault(group, set())
            waiting.difference_update([t for t in waiting if self._ended(t)])
            older = min((t for t in waiting if t < task_id), default=None)
            if holder is None and older is None:
                self._holders[group] = task_id
                waiting.discard(task_id)
                if not waiting:
                    del self._waiting[group]
                return None
            waiting.add(task_id)
            return holder if holder is not None else older

    def release(self, group, task_id):
        with self._lock:
            if self._holders.get(group) == task_id:
                del self._holders[group]
            waiting = self._waiting.get(group)
            if waiting is not None:
                waiting.discard(task_id)
                if not waiting:
                    del self._waiting[group]

    def holder(self, group):
        with self._lock:
            return self._holder(group)
