"""Who serves the task queue: one heartbeat row per server process.

Each process advertises what it can run (its runners, its recipes, the pools it serves), how
many tasks it runs at once and how many it runs now, when it starts and again every lease
interval. With a store shared by processes (Supabase) any process reads every process's row:
that is how a task nobody can run is refused or says what it waits for, and what
``GET /ops/workers`` shows. The in-process store has one process: its own row.
"""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from .base import isoformat

DEFAULT_POOL = "default"  # the pool of a recipe that names none, and of tasks without one


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """One server process as it advertises itself."""

    id: str  # host:pid:random, new at every start
    host: str
    pid: int
    pools: tuple[str, ...] | None  # None: every pool
    runners: tuple[str, ...]
    recipes: tuple[str, ...] | None  # None: not said (any recipe)
    workers: int
    running: int = 0
    started_at: datetime | None = None
    last_seen: datetime | None = None
    stopped_at: datetime | None = None

    def serves(self, pool: str) -> bool:
        return self.pools is None or pool in self.pools

    def lacks(self, runner: str | None, recipe: str | None, pool: str) -> str | None:
        """What this process lacks to run a task with this runner, recipe and pool, said as
        "no process ..." ends (None: it can run it)."""
        return self.lacks_for(self.runners, self.recipes, self.pools, runner, recipe, pool)

    @staticmethod
    def lacks_for(runners: tuple[str, ...], recipes: tuple[str, ...] | None,
                  pools: tuple[str, ...] | None, runner: str | None, recipe: str | None,
                  pool: str) -> str | None:
        """:meth:`lacks` for a process that has these runners, recipes and pools."""
        if runner not in runners:
            return f"runs {runner} tasks"
        if recipe is not None and recipes is not None and recipe not in recipes:
            return f"has the recipe {recipe}"
        if pools is not None and pool not in pools:
            return f"serves the pool {pool}"
        return None

    def is_live(self, now: datetime, live_seconds: float) -> bool:
        """Not stopped, and seen within ``live_seconds`` of ``now``."""
        return (self.stopped_at is None and self.last_seen is not None
                and now - self.last_seen <= timedelta(seconds=live_seconds))

    def to_dict(self, now: datetime, live_seconds: float) -> dict[str, Any]:
        return {"id": self.id, "host": self.host, "pid": self.pid,
                "pools": list(self.pools) if self.pools is not None else None,
                "runners": list(self.runners),
                "recipes": list(self.recipes) if self.recipes is not None else None,
                "workers": self.workers, "running": self.running,
                "started_at": isoformat(self.started_at), "last_seen": isoformat(self.last_seen),
                "stopped_at": isoformat(self.stopped_at),
                "live": self.is_live(now, live_seconds)}


class WorkerRegistry:
    """The heartbeat rows of the processes sharing a store."""

    def advertise(self, info: WorkerInfo) -> None:
        """Write (or renew) this process's row; ``last_seen`` becomes the store's now."""
        raise NotImplementedError

    def withdraw(self, worker_id: str) -> None:
        """Mark this process's row stopped (it claims nothing more)."""
        raise NotImplementedError

    def workers(self) -> list[WorkerInfo]:
        """Every row, the live and the stopped ones (rows unseen for a day are gone)."""
        raise NotImplementedError


class LocalWorkers(WorkerRegistry):
    """The in-process store's registry: this process alone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, WorkerInfo] = {}

    def advertise(self, info):
        now = datetime.now(timezone.utc)
        with self._lock:
            started = self._rows[info.id].started_at if info.id in self._rows else now
            self._rows[info.id] = dataclasses.replace(info, started_at=started, last_seen=now,
                                                      stopped_at=None)

    def withdraw(self, worker_id):
        with self._lock:
            if worker_id in self._rows:
                self._rows[worker_id] = dataclasses.replace(
                    self._rows[worker_id], stopped_at=datetime.now(timezone.utc))

    def workers(self):
        with self._lock:
            return list(self._rows.values())
