"""The deliveries in Supabase's ``va_notifications`` table, which every process reads.

Only the process that delivers a notification writes its row: an insert before the first
attempt, an update after each. These writes are made by the deliverer's threads, never by
a task's; one that fails is logged and tried again with the next update, and the delivery
itself goes on.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..store.supabase.rest import NOTIFICATIONS, SupabaseRest, parse_time
from .records import Delivery, DeliveryLog

MAX_SHOWN = 500  # deliveries one answer lists
WRITTEN = ("task_id", "url", "event", "format", "attempts", "status", "last_status",
           "last_error", "next_attempt_at", "delivered_at", "created_at")


class SupabaseDeliveryLog(DeliveryLog):
    def __init__(self, url: str, key: str, timeout: float = 5.0, *,
                 rest: SupabaseRest | None = None):
        self._rest = rest or SupabaseRest(url, key, timeout)  # this log's own client

    @classmethod
    def from_settings(cls, settings) -> SupabaseDeliveryLog:
        return cls(settings.supabase_url, settings.supabase_key,
                   timeout=settings.supabase_timeout_seconds)

    def add(self, delivery):
        [row] = self._rest.run(self._rest.table(NOTIFICATIONS).insert(
            _row(delivery), returning="representation"))
        delivery.id = int(row["id"])

    def update(self, delivery):
        if not delivery.id:  # its insert failed: this write is its first
            self.add(delivery)
            return
        row = _row(delivery)
        del row["created_at"], row["task_id"]
        self._rest.run(self._rest.table(NOTIFICATIONS).update(row, returning="minimal")
                       .eq("id", delivery.id))

    def for_task(self, task_id):
        rows = self._rest.run(self._rest.table(NOTIFICATIONS).select("*")
                              .eq("task_id", task_id).order("id").limit(MAX_SHOWN))
        return [_delivery(row) for row in rows]

    def close(self):
        self._rest.close()


def _time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat()


def _row(delivery: Delivery) -> dict[str, Any]:
    row = {name: getattr(delivery, name) for name in WRITTEN}
    for name in ("next_attempt_at", "delivered_at", "created_at"):
        row[name] = _time(row[name])
    return row


def _delivery(row: dict[str, Any]) -> Delivery:
    def moment(name: str) -> datetime | None:
        return parse_time(row[name]) if row.get(name) else None

    return Delivery(task_id=int(row["task_id"]), url=row["url"], event=row["event"],
                    created_at=parse_time(row["created_at"]), format=row.get("format") or "json",
                    attempts=int(row.get("attempts") or 0), status=row["status"],
                    last_status=row.get("last_status"), last_error=row.get("last_error"),
                    next_attempt_at=moment("next_attempt_at"),
                    delivered_at=moment("delivered_at"), id=int(row["id"]))
