"""Deleting finished tasks, and their events, once they are older than the retention period,
and the audit trail's records (or anything else with a ``purge(before, limit)``) of that age."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from .base import StoreUnavailable, TaskStore

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class RetentionSweeper:
    """Every ``interval`` seconds, purge tasks that ended more than ``max_age`` seconds ago,
    ``batch`` at a time so that no single call holds the store for long."""

    def __init__(self, store: TaskStore, max_age: float, *, interval: float,
                 batch: int = 500, clock: Callable[[], datetime] = utcnow,
                 also: tuple[Callable[[datetime, int], int], ...] = ()):
        self.store = store
        self.also = also  # more purges, e.g. the audit trail's
        self.max_age = timedelta(seconds=max_age)
        self.interval = interval
        self.batch = batch
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self) -> int:
        """One pass: purge batches until a batch comes back short; return the total."""
        cutoff = self._clock() - self.max_age
        total = 0
        while True:
            deleted = self.store.purge_finished(cutoff, self.batch)
            total += deleted
            if deleted < self.batch:
                break
        if total:
            log.info("retention: deleted %d finished task(s) older than %s", total, self.max_age)
        for purge in self.also:
            while purge(cutoff, self.batch) == self.batch:
                pass
        return total

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="ops-retention", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep()
            except StoreUnavailable as error:
                log.warning("retention: store unavailable, next try in %ss: %s",
                            self.interval, error)
