"""The heartbeat rows of the server processes in ``va_workers`` (see :mod:`app.store.workers`).

A renewal is one PATCH of the process's own row (a trigger sets ``last_seen`` to the
database's clock); the first one, which finds no row, inserts it. Rows unseen for a day are
deleted by whichever process reads them, so the table holds about a day of restarts.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from ..workers import WorkerInfo, WorkerRegistry
from .rest import WORKER_COLUMNS, WORKERS, SupabaseRest, parse_time

KEEP = timedelta(days=1)  # rows unseen this long are deleted


class SupabaseWorkers(WorkerRegistry):
    """Heartbeat rows as rows of ``va_workers``."""

    def __init__(self, rest: SupabaseRest):
        self._rest = rest

    def advertise(self, info):
        row = {"host": info.host, "pid": info.pid,
               "pools": list(info.pools) if info.pools is not None else None,
               "runners": list(info.runners),
               "recipes": list(info.recipes) if info.recipes is not None else None,
               "workers": info.workers, "running": info.running, "stopped_at": None}
        renewed = self._rest.run(self._rest.table(WORKERS).update(row).eq("id", info.id))
        if not renewed:
            self._rest.run(self._rest.table(WORKERS).insert({"id": info.id, **row},
                                                            returning="minimal"))

    def withdraw(self, worker_id):
        self._rest.run(self._rest.table(WORKERS).update(
            {"stopped_at": datetime.now(timezone.utc).isoformat()}).eq("id", worker_id))

    def workers(self):
        rows = self._rest.run(self._rest.table(WORKERS).select(",".join(WORKER_COLUMNS))
                              .order("started_at").limit(1000))
        infos = [_info(row) for row in rows]
        cutoff = datetime.now(timezone.utc) - KEEP
        if any(info.last_seen < cutoff for info in infos):
            self._rest.run(self._rest.table(WORKERS).delete(returning="minimal")
                           .lt("last_seen", cutoff.isoformat()))
        return [info for info in infos if info.last_seen >= cutoff]


def _info(row: dict[str, Any]) -> WorkerInfo:
    pools, recipes = row.get("pools"), row.get("recipes")
    return WorkerInfo(
        id=row["id"], host=row["host"], pid=int(row["pid"]),
        pools=tuple(pools) if pools is not None else None,
        runners=tuple(row.get("runners") or ()),
        recipes=tuple(recipes) if recipes is not None else None,
        workers=int(row["workers"]), running=int(row["running"]),
        started_at=parse_time(row["started_at"]), last_seen=parse_time(row["last_seen"]),
        stopped_at=parse_time(row["stopped_at"]) if row.get("stopped_at") else None)
