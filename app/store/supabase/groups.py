"""The concurrency groups' locks shared by every process: ``va_concurrency_locks``.

One row per held group (``group_name`` is the primary key): a task takes the lock with an
insert that skips a conflicting row (``ON CONFLICT DO NOTHING``; PostgREST then answers no
row), and gives it back with a delete of the row that names both the group and the task. A
lock whose task has ended without giving it back (its process died: the orphan sweep ended
the task ``failed``) is stale: whoever finds it deletes it, with the same conditional
delete, and takes the lock again. The tasks waiting for a group are its ``queued`` tasks
(the group is in their ``created`` event), so that they start in the order they were
created, whichever process created them.
"""

from __future__ import annotations

from ..base import TERMINAL_KINDS, StoreUnavailable
from ..groups import GroupLocks
from .rest import EVENTS, LOCKS, TASKS, SupabaseRest

# Attempts at taking a lock that keeps changing hands under us, before saying so.
ATTEMPTS = 4
# Queued tasks older than the asking one looked at for the group's waiting tasks.
SCAN = 500


class SupabaseGroupLocks(GroupLocks):
    """Locks as rows of ``va_concurrency_locks``."""

    def __init__(self, rest: SupabaseRest):
        self._rest = rest

    def acquire(self, group, task_id):
        older = self._oldest_waiting(group, task_id)
        if older is not None:
            holder = self.holder(group)
            return holder if holder is not None else older
        for _ in range(ATTEMPTS):
            if self._insert(group, task_id):
                return None
            holder = self._lock_holder(group)
            if holder == task_id:
                return None
            if holder is None:
                continue  # given back meanwhile: try again
            if not self._ended(holder):
                return holder
            self._delete(group, holder)  # stale: its task ended without giving it back
        raise StoreUnavailable(f"the lock of concurrency group {group} keeps changing hands")

    def release(self, group, task_id):
        self._delete(group, task_id)

    def holder(self, group):
        holder = self._lock_holder(group)
        if holder is not None and self._ended(holder):
            self._delete(group, holder)
            return None
        return holder

    def holders(self, groups: list[str]) -> dict[str, int]:
        """The task holding each of ``groups`` that is held (one read; stale ones too)."""
        rows = self._rest.run(self._rest.table(LOCKS).select("group_name,task_id")
                              .in_("group_name", groups))
        return {row["group_name"]: row["task_id"] for row in rows}

    def _insert(self, group: str, task_id: int) -> bool:
        rows = self._rest.run(self._rest.table(LOCKS).upsert(
            {"group_name": group, "task_id": task_id}, on_conflict="group_name",
            ignore_duplicates=True))
        return bool(rows)

    def _lock_holder(self, group: str) -> int | None:
        rows = self._rest.run(self._rest.table(LOCKS).select("task_id")
                              .eq("group_name", group))
        return rows[0]["task_id"] if rows else None

    def _delete(self, group: str, task_id: int) -> None:
        self._rest.run(self._rest.table(LOCKS).delete(returning="minimal")
                       .eq("group_name", group).eq("task_id", task_id))

    def _ended(self, task_id: int) -> bool:
        """Whether the task has its terminal event (written before its row's status)."""
        return bool(self._rest.run(self._rest.table(EVENTS).select("task_id")
                                   .eq("task_id", task_id).in_("kind", sorted(TERMINAL_KINDS))
                                   .limit(1)))

    def _oldest_waiting(self, group: str, task_id: int) -> int | None:
        """The oldest queued task of the group created before ``task_id``, if any."""
        queued = self._rest.run(self._rest.table(TASKS).select("id").eq("status", "queued")
                                .lt("id", task_id).order("id").limit(SCAN))
        if not queued:
            return None
        rows = self._rest.run(self._rest.table(EVENTS).select("task_id").eq("kind", "created")
                              .in_("task_id", [row["id"] for row in queued])
                              .eq("data_json->>concurrency_group", group)
                              .order("task_id").limit(1))
        return rows[0]["task_id"] if rows else None
