"""The audit log in Supabase's ``va_audit`` table, shared by every process of the service.

Appending never waits for Supabase: records go into a bounded buffer, and a background
thread (a greenlet under gunicorn's gevent worker), started on the first append in each
process, writes what waits at most every ``interval`` seconds, in bulk inserts of up to
``MAX_BATCH`` rows. :meth:`SupabaseAuditLog.flush` writes what waits at once (a query does
that first, so a process reads its own appends). A failed write keeps the records for the
next round; past ``max_waiting`` records the oldest are dropped, with one error line in
the log. A batch whose answer was lost (sent, no reply) is sent again and may then be
stored twice: the audit prefers a duplicate to a gap.

The record's own time (``at``) is stored in ``created_at``; ids are the table's identity,
ascending in the order of the appends of one process.
"""

from __future__ import annotations

import collections
import logging
import threading
from datetime import datetime, timezone
from typing import Any

from ..background import PerProcessThreads
from ..store.supabase.rest import AUDIT, SupabaseError, SupabaseRest, parse_time
from .log import AuditLog, AuditQuery, AuditRecord

log = logging.getLogger(__name__)

MAX_BATCH = 500  # rows a bulk insert carries at most
MAX_WAITING = 10_000
INTERVAL = 0.2
INSERT_COLUMNS = ("created_at", "actor", "action", "outcome", "task_id", "client",
                  "request_id", "detail")


class SupabaseAuditLog(AuditLog):
    def __init__(self, url: str, key: str, timeout: float = 5.0, *, interval: float = INTERVAL,
                 max_waiting: int = MAX_WAITING, rest: SupabaseRest | None = None):
        self._rest = rest or SupabaseRest(url, key, timeout)  # this log's own client
        self.interval = interval
        self.max_waiting = max_waiting
        self._lock = threading.Lock()  # guards the buffer
        self._writing = threading.Lock()  # one writer at a time: the thread or a flush
        self._waiting: collections.deque[tuple[int, AuditRecord]] = collections.deque()
        self._seq = 0  # numbers the appends, to take written ones off the buffer
        self._dropped = 0  # records dropped since the buffer was last below its bound
        self._failing = False
        self._stopping = threading.Event()
        self._writer = PerProcessThreads(self._run, "ops-audit")

    @classmethod
    def from_settings(cls, settings) -> SupabaseAuditLog:
        return cls(settings.supabase_url, settings.supabase_key,
                   timeout=settings.supabase_timeout_seconds)

    @property
    def waiting(self) -> int:
        """Records appended and not written yet."""
        with self._lock:
            return len(self._waiting)

    # -- the contract ---------------------------------------------------------------------

    def append(self, records: list[AuditRecord]) -> None:
        if not records:
            return
        dropped = 0
        with self._lock:
            for record in records:
                self._seq += 1
                self._waiting.append((self._seq, record))
            while len(self._waiting) > self.max_waiting:
                self._waiting.popleft()
                dropped += 1
            first_drop = dropped and not self._dropped
            self._dropped += dropped
        if first_drop:
            log.error("audit: %d records wait to be written to Supabase (the bound): the "
                      "oldest are dropped until it answers again", self.max_waiting)
        self._start()

    def query(self, query: AuditQuery) -> list[AuditRecord]:
        self.flush()
        builder = self._rest.table(AUDIT).select("*")
        if query.before_id is not None:
            builder = builder.lt("id", query.before_id)
        for column, value in (("actor", query.actor), ("action", query.action),
                              ("task_id", query.task_id)):
            if value is not None:
                builder = builder.eq(column, value)
        if query.since is not None:
            builder = builder.gte("created_at", _utc(query.since).isoformat())
        if query.until is not None:
            builder = builder.lt("created_at", _utc(query.until).isoformat())
        rows = self._rest.run(builder.order("id", desc=True).limit(query.limit))
        return [_record_from_row(row) for row in rows]

    def purge(self, before: datetime, limit: int) -> int:
        self.flush()  # what waits may be old enough too
        rows = self._rest.run(self._rest.table(AUDIT).select("id")
                              .lt("created_at", _utc(before).isoformat())
                              .order("created_at").limit(limit))
        ids = [row["id"] for row in rows]
        if ids:
            self._rest.run(self._rest.table(AUDIT).delete(returning="minimal").in_("id", ids))
        return len(ids)

    def flush(self) -> None:
        """Write what waits now; on failure it stays for the next round (no error here)."""
        self._write_all()

    def close(self) -> None:
        self._stopping.set()
        self._writer.stop(self._rest.timeout * 2 + self.interval)
        self._write_all()
        left = self.waiting
        if left:
            log.error("audit: closing with %d records not written to Supabase", left)
        self._rest.close()

    # -- writing --------------------------------------------------------------------------

    def _start(self) -> None:
        """Start the writer on the first append in this process (after gunicorn's fork)."""
        if not self._stopping.is_set():
            self._writer.start()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self._write_all()
            except Exception:  # the writer must outlive any surprise
                log.exception("audit: writing records failed")

    def _write_all(self) -> bool:
        """Write what waits, batch after batch; False if a write failed (the rest waits)."""
        with self._writing:
            while True:
                with self._lock:
                    batch = list(self._take_batch())
                if not batch:
                    return True
                try:
                    self._rest.run(self._rest.table(AUDIT).insert(
                        [_row(record) for _, record in batch], returning="minimal"))
                except SupabaseError as error:
                    if not self._failing:
                        self._failing = True
                        log.warning("audit: cannot write to Supabase, %d records wait for "
                                    "the next try: %s", self.waiting, error)
                    return False
                last = batch[-1][0]
                with self._lock:
                    while self._waiting and self._waiting[0][0] <= last:
                        self._waiting.popleft()
                    recovered = self._failing
                    self._failing = False
                    if len(self._waiting) < self.max_waiting:
                        self._dropped = 0
                if recovered:
                    log.warning("audit: Supabase answers again: the waiting records are "
                                "written")

    def _take_batch(self):
        for index, entry in enumerate(self._waiting):
            if index == MAX_BATCH:
                return
            yield entry


def _utc(moment: datetime) -> datetime:
    """The moment in UTC (a naive one is taken to be UTC already)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _row(record: AuditRecord) -> dict[str, Any]:
    return {"created_at": _utc(record.at).isoformat(), "actor": record.actor,
            "action": record.action, "outcome": record.outcome, "task_id": record.task_id,
            "client": record.client, "request_id": record.request_id,
            "detail": record.detail or {}}


def _record_from_row(row: dict[str, Any]) -> AuditRecord:
    task_id = row.get("task_id")
    return AuditRecord(action=row["action"], outcome=row["outcome"],
                       at=parse_time(row["created_at"]), actor=row.get("actor"),
                       task_id=int(task_id) if task_id is not None else None,
                       client=row.get("client"), request_id=row.get("request_id"),
                       detail=row.get("detail") or {}, id=int(row["id"]))
