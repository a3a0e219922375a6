"""The audit log contract and its in-process backend.

A record says who did what, when, to which task and how it went: time, actor, action, task,
outcome, the client's address, the request id and a few details. Records are only appended,
read newest first with filters and a cursor (the id), and deleted by age (retention).
Every backend (:class:`MemoryAuditLog`; the Supabase one in :mod:`.supabase`, table
``va_audit``) passes ``tests/audit_contract.py``.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ..store import isoformat


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclasses.dataclass(frozen=True)
class AuditRecord:
    action: str  # task.create, task.relaunch, task.cancel, stream_token.mint, auth.refused,
    #              credentials.reload
    outcome: str  # ok, denied (401/403), rejected (other 4xx), error (5xx)
    at: datetime
    actor: str | None = None
    task_id: int | None = None
    client: str | None = None
    request_id: str | None = None
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)
    id: int = 0  # given by the log when the record is stored

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "at": isoformat(self.at), "actor": self.actor,
                "action": self.action, "outcome": self.outcome, "task_id": self.task_id,
                "client": self.client, "request_id": self.request_id, "detail": self.detail}


@dataclasses.dataclass(frozen=True)
class AuditQuery:
    """Which records to read: newest first, up to ``limit``, with ``id < before_id``, and
    only those matching every filter given (``since`` inclusive, ``until`` exclusive)."""

    limit: int = 50
    before_id: int | None = None
    actor: str | None = None
    action: str | None = None
    task_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, record: AuditRecord) -> bool:
        return ((self.before_id is None or record.id < self.before_id)
                and (self.actor is None or record.actor == self.actor)
                and (self.action is None or record.action == self.action)
                and (self.task_id is None or record.task_id == self.task_id)
                and (self.since is None or record.at >= self.since)
                and (self.until is None or record.at < self.until))


class AuditLog:
    """What every audit backend provides; safe to call from many threads/greenlets."""

    def append(self, records: list[AuditRecord]) -> None:
        """Store the records (their ids are given here, ascending in the order given). A
        backend may write them a moment later; :meth:`flush` waits for that."""
        raise NotImplementedError

    def query(self, query: AuditQuery) -> list[AuditRecord]:
        """The matching records, newest first (this process's own appends included)."""
        raise NotImplementedError

    def purge(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` records older than ``before``, oldest first; how many."""
        raise NotImplementedError

    def flush(self) -> None:
        """Write what :meth:`append` kept for later."""

    def close(self) -> None:
        """Flush and release what the log holds."""
        self.flush()


class MemoryAuditLog(AuditLog):
    """The newest ``max_records`` records, in process (the oldest go first past that)."""

    def __init__(self, max_records: int = 10_000, clock: Callable[[], datetime] = utcnow):
        self._records: collections.deque[AuditRecord] = collections.deque(maxlen=max_records)
        self._lock = threading.Lock()
        self._last_id = 0

    def append(self, records):
        with self._lock:
            for record in records:
                self._last_id += 1
                self._records.append(dataclasses.replace(record, id=self._last_id))

    def query(self, query):
        with self._lock:
            newest_first = reversed(self._records)
            found = []
            for record in newest_first:
                if query.matches(record):
                    found.append(record)
                    if len(found) == query.limit:
                        break
            return found

    def purge(self, before, limit):
        deleted = 0
        with self._lock:
            while self._records and deleted < limit and self._records[0].at < before:
                self._records.popleft()
                deleted += 1
        return deleted
