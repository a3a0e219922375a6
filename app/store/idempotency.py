"""Idempotency keys: a request sent again with the same ``Idempotency-Key`` gets the task the
first one created instead of a second task.

A key belongs to an actor (the credential's name, or the proxy's user): ``(actor, key)`` is
one entry. An entry holds the request's fingerprint (what was asked), and once the first
request has made its task, the task's id. The HTTP layer (``app/http/idempotency.py``)
claims a key before it creates, completes it with the task, and releases it when the request
fails before a task exists. Entries older than ``ttl`` are forgotten: the key may be claimed
anew. A claim that never completed (its process died mid-request) is forgotten after
``pending_ttl``.

Every backend (:class:`MemoryIdempotencyKeys`; the Supabase one in
:mod:`app.store.supabase.idempotency`, table ``va_idempotency_keys``) passes
``tests/idempotency_contract.py``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

TTL = timedelta(hours=24)
PENDING_TTL = timedelta(minutes=2)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclasses.dataclass(frozen=True)
class KeyEntry:
    """What a key holds: the fingerprint of its first request, and the task it made (None
    while that request is under way)."""

    fingerprint: str
    task_id: int | None
    created_at: datetime

    @property
    def pending(self) -> bool:
        return self.task_id is None


class IdempotencyKeys:
    """What every backend provides; safe to call from many threads/greenlets. Methods raise
    :class:`~app.store.base.StoreUnavailable` when the backend cannot answer."""

    def __init__(self, clock: Callable[[], datetime] = utcnow, ttl: timedelta = TTL,
                 pending_ttl: timedelta = PENDING_TTL):
        self._clock = clock
        self.ttl = ttl
        self.pending_ttl = pending_ttl

    def claim(self, actor: str, key: str, fingerprint: str) -> KeyEntry | None:
        """Take the key for a new request, atomically: None when it was free (or its entry
        had expired, and is replaced) and is now this caller's, pending; else the live entry
        someone else holds (pending, or with its task)."""
        raise NotImplementedError

    def complete(self, actor: str, key: str, task_id: int) -> None:
        """Record the task the claimed key's request created."""
        raise NotImplementedError

    def release(self, actor: str, key: str, task_id: int | None = None) -> None:
        """Forget the entry if it still holds ``task_id`` (None: a pending claim, given up by
        its failed request; an id: a task that is gone). Anything else is left alone."""
        raise NotImplementedError

    def lookup(self, actor: str, key: str) -> KeyEntry | None:
        """The key's live (not expired) entry, or None."""
        raise NotImplementedError

    def wait(self, actor: str, key: str, timeout: float) -> KeyEntry | None:
        """Wait up to ``timeout`` seconds while the key's entry is pending; return the entry
        then (completed, or still pending when the time ran out), or None once it is gone."""
        raise NotImplementedError

    def purge(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` expired entries; how many. ``before`` is ignored: entries
        expire by ``ttl`` (the retention sweeper calls every purge alike)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the backend holds; waits under way return."""

    def _expired(self, entry: KeyEntry, now: datetime) -> bool:
        age = now - entry.created_at
        return age >= (self.pending_ttl if entry.pending else self.ttl)


class MemoryIdempotencyKeys(IdempotencyKeys):
    """Entries in a dict under one condition, which completes and releases notify."""

    def __init__(self, clock: Callable[[], datetime] = utcnow, ttl: timedelta = TTL,
                 pending_ttl: timedelta = PENDING_TTL):
        super().__init__(clock, ttl, pending_ttl)
        self._changed = threading.Condition()
        self._entries: dict[tuple[str, str], KeyEntry] = {}
        self._closed = False

    def claim(self, actor, key, fingerprint):
        with self._changed:
            entry = self._live(actor, key)
            if entry is not None:
                return entry
            self._entries[actor, key] = KeyEntry(fingerprint, None, self._clock())
            return None

    def complete(self, actor, key, task_id):
        with self._changed:
            entry = self._entries.get((actor, key))
            if entry is not None:
                self._entries[actor, key] = dataclasses.replace(entry, task_id=task_id)
            self._changed.notify_all()

    def release(self, actor, key, task_id=None):
        with self._changed:
            entry = self._entries.get((actor, key))
            if entry is not None and entry.task_id == task_id:
                del self._entries[actor, key]
            self._changed.notify_all()

    def lookup(self, actor, key):
        with self._changed:
            return self._live(actor, key)

    def wait(self, actor, key, timeout):
        with self._changed:
            self._changed.wait_for(
                lambda: self._closed or (e := self._live(actor, key)) is None or not e.pending,
                timeout)
            return self._live(actor, key)

    def purge(self, before, limit):
        with self._changed:
            now = self._clock()
            old = [k for k, e in self._entries.items() if self._expired(e, now)][:limit]
            for k in old:
                del self._entries[k]
            return len(old)

    def close(self):
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _live(self, actor: str, key: str) -> KeyEntry | None:
        entry = self._entries.get((actor, key))
        if entry is not None and self._expired(entry, self._clock()):
            del self._entries[actor, key]
            return None
        return entry


def make_idempotency_keys(settings) -> IdempotencyKeys:
    """The ``va_idempotency_keys`` backend when the store is Supabase's, else in process."""
    if settings.uses_supabase:
        from .supabase.idempotency import SupabaseIdempotencyKeys
        return SupabaseIdempotencyKeys.from_settings(settings)
    return MemoryIdempotencyKeys()
