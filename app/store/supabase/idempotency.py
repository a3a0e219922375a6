"""Idempotency keys in Supabase's ``va_idempotency_keys`` table, shared by every process.

A claim is one insert that skips a conflicting row (``on_conflict=actor,key``, PostgREST's
``resolution=ignore-duplicates``): it answers the row when the key was free, nothing when
someone holds it. An expired entry is deleted on a condition of its age (a fresh claim made
meanwhile by another process stays), then the key is claimed again. The claim's time is the
service's clock, sent with the row, so expiry follows one clock whoever reads it. A wait
reads the entry every ``poll_seconds`` until it is completed or gone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from ..base import StoreUnavailable
from ..idempotency import PENDING_TTL, TTL, IdempotencyKeys, KeyEntry, utcnow
from .rest import IDEMPOTENCY, IDEMPOTENCY_COLUMNS, SupabaseRest, parse_time

CLAIM_ROUNDS = 4  # inserts tried before giving up on a key that keeps changing hands


class SupabaseIdempotencyKeys(IdempotencyKeys):
    def __init__(self, url: str, key: str, timeout: float = 5.0, *, poll_seconds: float = 0.1,
                 clock: Callable[[], datetime] = utcnow, ttl: timedelta = TTL,
                 pending_ttl: timedelta = PENDING_TTL, rest: SupabaseRest | None = None):
        super().__init__(clock, ttl, pending_ttl)
        self._rest = rest or SupabaseRest(url, key, timeout)  # its own client, as the audit's
        self.poll_seconds = poll_seconds
        self._closing = threading.Event()

    @classmethod
    def from_settings(cls, settings) -> SupabaseIdempotencyKeys:
        # A waiting request reads the entry at most every 0.1 s: it answers a client.
        return cls(settings.supabase_url, settings.supabase_key,
                   timeout=settings.supabase_timeout_seconds,
                   poll_seconds=min(0.1, settings.supabase_poll_seconds))

    def claim(self, actor, key, fingerprint):
        for _ in range(CLAIM_ROUNDS):
            now = self._clock()
            inserted = self._rest.run(self._rest.table(IDEMPOTENCY).upsert(
                {"actor": actor, "key": key, "fingerprint": fingerprint,
                 "created_at": now.isoformat()},
                on_conflict="actor,key", ignore_duplicates=True, returning="representation"))
            if inserted:
                return None
            entry = self._read(actor, key)
            if entry is None:
                continue  # released between the insert and the read
            if not self._expired(entry, now):
                return entry
            self._delete_expired(actor, key, entry, now)
        raise StoreUnavailable(f"the Idempotency-Key entry of {actor} kept changing: "
                               "try again")

    def complete(self, actor, key, task_id):
        self._rest.run(self._rest.table(IDEMPOTENCY).update({"task_id": task_id},
                                                            returning="minimal")
                       .eq("actor", actor).eq("key", key))

    def release(self, actor, key, task_id=None):
        query = (self._rest.table(IDEMPOTENCY).delete(returning="minimal")
                 .eq("actor", actor).eq("key", key))
        query = query.is_("task_id", "null") if task_id is None else query.eq("task_id", task_id)
        self._rest.run(query)

    def lookup(self, actor, key):
        entry = self._read(actor, key)
        if entry is None or self._expired(entry, self._clock()):
            return None
        return entry

    def wait(self, actor, key, timeout):
        deadline = time.monotonic() + timeout
        while True:
            entry = self.lookup(actor, key)
            left = deadline - time.monotonic()
            if entry is None or not entry.pending or left <= 0:
                return entry
            if self._closing.wait(min(self.poll_seconds, left)):
                return self.lookup(actor, key)

    def purge(self, before, limit):
        now = self._clock()
        table = self._rest.table
        done = self._rest.run(table(IDEMPOTENCY).delete()
                              .lte("created_at", (now - self.ttl).isoformat()))
        pending = self._rest.run(table(IDEMPOTENCY).delete().is_("task_id", "null")
                                 .lte("created_at", (now - self.pending_ttl).isoformat()))
        return len(done) + len(pending)

    def close(self):
        self._closing.set()
        self._rest.close()

    def _read(self, actor: str, key: str) -> KeyEntry | None:
        rows = self._rest.run(self._rest.table(IDEMPOTENCY)
                              .select(",".join(IDEMPOTENCY_COLUMNS))
                              .eq("actor", actor).eq("key", key))
        return _entry(rows[0]) if rows else None

    def _delete_expired(self, actor: str, key: str, entry: KeyEntry, now: datetime) -> None:
        """Delete the entry only if it is still as old as the one read: a claim made since
        by another process is younger, and stays."""
        query = (self._rest.table(IDEMPOTENCY).delete(returning="minimal")
                 .eq("actor", actor).eq("key", key))
        if entry.pending:
            query = query.is_("task_id", "null").lte(
                "created_at", (now - self.pending_ttl).isoformat())
        else:
            query = query.lte("created_at", (now - self.ttl).isoformat())
        self._rest.run(query)


def _entry(row: dict[str, Any]) -> KeyEntry:
    task_id = row.get("task_id")
    return KeyEntry(fingerprint=row["fingerprint"],
                    task_id=int(task_id) if task_id is not None else None,
                    created_at=parse_time(row["created_at"]))
