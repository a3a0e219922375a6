"""The deliveries of notifications, as ``GET /ops/tasks/{id}/notifications`` shows them.

One :class:`Delivery` per notification and URL: how many attempts were made, how the last one
went, when the next is due, when it was delivered. The deliverer adds it before the first
attempt and updates it after each. Backends: :class:`MemoryDeliveryLog` (in process, the
newest :data:`MAX_RECORDS`), and the ``va_notifications`` table (:mod:`.supabase`).
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from datetime import datetime
from typing import Any

from ..store import isoformat

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
MAX_RECORDS = 10_000


@dataclasses.dataclass
class Delivery:
    task_id: int
    url: str  # as viewers may see it (app.notify.payload.shown_url)
    event: str
    created_at: datetime
    format: str = "json"
    attempts: int = 0
    status: str = PENDING
    last_status: int | None = None  # the HTTP status of the last answer
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    id: int = 0  # given by the log

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "event": self.event, "format": self.format,
                "status": self.status, "attempts": self.attempts,
                "last_status": self.last_status, "last_error": self.last_error,
                "next_attempt_at": isoformat(self.next_attempt_at),
                "delivered_at": isoformat(self.delivered_at),
                "created_at": isoformat(self.created_at)}


class DeliveryLog:
    """What every backend provides; safe to call from many threads/greenlets."""

    def add(self, delivery: Delivery) -> None:
        """Store a new delivery and set its ``id``."""
        raise NotImplementedError

    def update(self, delivery: Delivery) -> None:
        """Store the delivery's state after an attempt."""
        raise NotImplementedError

    def for_task(self, task_id: int) -> list[Delivery]:
        """The task's deliveries, in the order they were added."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the log holds."""


class MemoryDeliveryLog(DeliveryLog):
    """The deliveries of this process, the oldest tasks' forgotten past ``max_records``."""

    def __init__(self, max_records: int = MAX_RECORDS):
        self.max_records = max_records
        self._lock = threading.Lock()
        self._by_task: collections.OrderedDict[int, list[Delivery]] = collections.OrderedDict()
        self._count = 0
        self._last_id = 0

    def add(self, delivery):
        with self._lock:
            self._last_id += 1
            delivery.id = self._last_id
            self._by_task.setdefault(delivery.task_id, []).append(dataclasses.replace(delivery))
            self._count += 1
            while self._count > self.max_records and len(self._by_task) > 1:
                _, dropped = self._by_task.popitem(last=False)
                self._count -= len(dropped)

    def update(self, delivery):
        with self._lock:
            kept = self._by_task.get(delivery.task_id, [])
            for index, old in enumerate(kept):
                if old.id == delivery.id:
                    kept[index] = dataclasses.replace(delivery)

    def for_task(self, task_id):
        with self._lock:
            return [dataclasses.replace(d) for d in self._by_task.get(task_id, [])]
