"""This process among the processes sharing a store: what it advertises, what it knows of
the others.

Every lease interval the process renews its heartbeat row (:mod:`app.store.workers`) with
what it can run (its runners, its recipes, its pools: ``OPS_POOLS``) and its load, and reads
everybody's rows. From them a new task nobody has ever advertised being able to run is
refused (:meth:`Fleet.refusal`), and a queued task no live process can run says why
(:meth:`Fleet.unserved`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ..store import Task, TaskStore
from ..store.workers import DEFAULT_POOL, WorkerInfo

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What this process can run."""

    runners: tuple[str, ...]
    recipes: tuple[str, ...] | None = None  # None: whatever its recipe runner has
    pools: tuple[str, ...] | None = None  # None: every pool


def needs(task_or_extra: Task | dict[str, Any], runner: str | None = None
          ) -> tuple[str | None, str | None, str]:
    """The runner, recipe and pool a task (or a new task's ``extra``) needs."""
    extra = task_or_extra.extra if isinstance(task_or_extra, Task) else task_or_extra
    if isinstance(task_or_extra, Task):
        runner = task_or_extra.runner
    return runner, extra.get("recipe"), extra.get("pool") or DEFAULT_POOL


class Fleet:
    """This process's heartbeat row, and the rows of every process sharing the store."""

    def __init__(self, store: TaskStore, capabilities: Capabilities, *, workers: int,
                 heartbeat_seconds: float, live_seconds: float,
                 running: Callable[[], int] = lambda: 0,
                 clock: Callable[[], float] = time.monotonic):
        self.registry = store.worker_registry()
        self.capabilities = capabilities
        self.workers = workers
        self.heartbeat_seconds = heartbeat_seconds
        self.live_seconds = live_seconds
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.id = f"{self.host}:{self.pid}:{secrets.token_hex(3)}"
        self._running = running
        self._clock = clock
        self._lock = threading.Lock()
        self._rows: list[WorkerInfo] | None = None  # everybody's, as last read
        self._next_beat = float("-inf")
        self._withdrawn = False

    def me(self) -> WorkerInfo:
        caps = self.capabilities
        return WorkerInfo(id=self.id, host=self.host, pid=self.pid,
                          pools=caps.pools, runners=caps.runners, recipes=caps.recipes,
                          workers=self.workers, running=self._running())

    def beat_if_due(self) -> None:
        """Renew this process's row and read everybody's, once per heartbeat interval."""
        if self._withdrawn or self._clock() < self._next_beat:
            return
        self._next_beat = self._clock() + self.heartbeat_seconds
        try:
            self.registry.advertise(self.me())
            rows = self.registry.workers()
        except Exception as error:  # the store is away: the next beat tries again
            log.warning("could not renew this process's heartbeat row: %s", error)
            return
        with self._lock:
            self._rows = rows

    def withdraw(self) -> None:
        """This process stops claiming: its row says so."""
        self._withdrawn = True
        try:
            self.registry.withdraw(self.id)
        except Exception as error:
            log.warning("could not mark this process's heartbeat row stopped: %s", error)

    def rows(self) -> list[WorkerInfo]:
        """Everybody's rows as last read; this process's own as it is now (it answers: it
        is seen now, whenever its row was last renewed)."""
        with self._lock:
            rows = self._rows
        if rows is None:
            self.beat_if_due()
            with self._lock:
                rows = self._rows or []
        now = datetime.now(timezone.utc)
        mine = next((row for row in rows if row.id == self.id), None)
        me = dataclasses.replace(self.me(), started_at=mine.started_at if mine else now,
                                 last_seen=now)
        return [me if row.id == self.id else row for row in rows] + ([] if mine else [me])

    def lacks(self, task: Task) -> str | None:
        """What this process lacks to run ``task`` (None: it can run it). Asked for every
        queued task a claim round looks at: no load count, no row built."""
        caps = self.capabilities
        return WorkerInfo.lacks_for(caps.runners, caps.recipes, caps.pools, *needs(task))

    def refusal(self, runner: str, extra: dict[str, Any]) -> str | None:
        """Why a new task cannot be accepted: no process ever advertised it could run it."""
        wanted = needs(extra, runner)
        reasons = [row.lacks(*wanted) for row in self.rows()]
        if all(reasons) and self._reread():  # a process may have started since the last beat
            reasons = [row.lacks(*wanted) for row in self.rows()]
        if all(reasons):
            return f"no server process {reasons[0]}: start one that does (docs/supabase.md)"
        return None

    def _reread(self) -> bool:
        """Read everybody's rows now; False if the store does not answer."""
        try:
            rows = self.registry.workers()
        except Exception as error:
            log.warning("could not read the heartbeat rows: %s", error)
            return False
        with self._lock:
            self._rows = rows
        return True

    def unserved(self, task: Task) -> str | None:
        """Why no live process takes the queued ``task`` (None: one can)."""
        now = datetime.now(timezone.utc)
        live = [row for row in self.rows() if row.id == self.id or row.is_live(now,
                                                                              self.live_seconds)]
        reasons = [row.lacks(*needs(task)) for row in live]
        if reasons and all(reasons):
            return f"no live server process {reasons[0]}"
        return None

    def to_dicts(self) -> list[dict[str, Any]]:
        """What ``GET /ops/workers`` shows."""
        now = datetime.now(timezone.utc)
        return [row.to_dict(now, self.live_seconds) | {"this": row.id == self.id}
                for row in self.rows()]
