"""The audit trail: what the service records, on top of an :class:`~.log.AuditLog`.

State-changing calls and stream tokens are recorded one by one. Refused credentials are
aggregated, so that a flood of bad tokens cannot fill the log: the first refusal of a client
(for one reason, one claimed name) is recorded at once; the ones that follow within
``refusal_window`` seconds are counted, and written as one record (``detail.count``) when the
window has passed and the trail is next used, read or closed. At most ``max_refusal_keys``
windows are open; past that, refusals share one window (client ``*``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from .log import AuditLog, AuditQuery, AuditRecord, utcnow

log = logging.getLogger(__name__)

REFUSED = "auth.refused"
MAX_REASON = 200


@dataclasses.dataclass
class _Window:
    first: AuditRecord
    ends: datetime
    count: int = 0  # refusals after the first, not written yet
    last_at: datetime | None = None


class AuditTrail:
    def __init__(self, audit_log: AuditLog, *, refusal_window: float = 60.0,
                 max_refusal_keys: int = 1000, clock: Callable[[], datetime] = utcnow):
        self.log = audit_log
        self._window = timedelta(seconds=refusal_window)
        self._max_keys = max_refusal_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple, _Window] = {}

    def record(self, action: str, outcome: str, *, actor: str | None = None,
               task_id: int | None = None, client: str | None = None,
               request_id: str | None = None, detail: dict[str, Any] | None = None) -> None:
        """Append one record (and the refusal counts whose window has passed)."""
        entry = AuditRecord(action=action, outcome=outcome, at=self._clock(), actor=actor,
                            task_id=task_id, client=client, request_id=request_id,
                            detail=detail or {})
        self._write([*self._closed_windows(), entry])

    def refused(self, reason: str, *, client: str | None, actor: str | None = None,
                request_id: str | None = None, status: int = 401) -> None:
        """Note a refused credential (401) or role (403), aggregated by client and reason."""
        reason = reason[:MAX_REASON]
        now = self._clock()
        key = (client, actor, reason, status)
        with self._lock:
            due = self._take_closed(now)
            window = self._windows.get(key)
            if window is None and len(self._windows) >= self._max_keys:
                key = ("*", None, "refusals from many clients", status)
                window = self._windows.get(key)
            if window is not None:
                window.count += 1
                window.last_at = now
                first = None
            else:
                first = AuditRecord(action=REFUSED, outcome="denied", at=now, actor=key[1],
                                    client=key[0], request_id=request_id,
                                    detail={"reason": key[2], "status": status, "count": 1})
                self._windows[key] = _Window(first, now + self._window)
        self._write(due + ([first] if first else []))

    def query(self, query: AuditQuery) -> list[AuditRecord]:
        """Read records, after writing the refusal counts that are due (the log's query
        includes what this process appended and has not written yet)."""
        self._write(self._closed_windows())
        return self.log.query(query)

    def purge(self, before: datetime, limit: int) -> int:
        return self.log.purge(before, limit)

    def close(self) -> None:
        """Write every open refusal count, then close the log."""
        with self._lock:
            due = self._take_closed(None)
        self._write(due)
        self.log.close()

    def _closed_windows(self) -> list[AuditRecord]:
        with self._lock:
            return self._take_closed(self._clock())

    def _take_closed(self, now: datetime | None) -> list[AuditRecord]:
        """The count records of the windows that ended by ``now`` (None: all), removed."""
        due = []
        for key, window in list(self._windows.items()):
            if now is not None and window.ends > now:
                continue
            del self._windows[key]
            if window.count:
                first = window.first
                due.append(dataclasses.replace(
                    first, at=window.last_at, request_id=None,
                    detail={**first.detail, "count": window.count,
                            "since": first.at.isoformat()}))
        return due

    def _write(self, records: list[AuditRecord]) -> None:
        if not records:
            return
        try:
            self.log.append(records)
        except Exception as error:  # the change it records is made: say so, do not undo it
            log.error("audit: %d record(s) not written: %s", len(records), error)
