"""Leases and orphans: started tasks whose process died end ``failed``.

The rule: the process that runs a task (it claimed it) writes a ``lease`` event for it
whenever it has written nothing for one lease interval. Every process sweeps once per lease
interval: it lists the started, unfinished tasks it does not own and looks for events of
theirs newer than what it saw last time. A queued task is nobody's (any process may claim
it, :mod:`.queue`): it is never an orphan. A task with no new event during ``orphan_after``
seconds of sweeps (default 6 lease intervals) is an orphan: the sweeping process ends it
``failed`` with the reason in its terminal event, and becomes its writer for that. The
unique terminal index lets exactly one sweeper win when several find it at once.

Time is measured by the sweeper's own clock between its own reads, so hosts need no
synchronised clocks. A sweep that cannot read Supabase restarts every count, so that an
owner cut off by the same outage has ``orphan_after`` seconds after it comes back to write.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..base import Event, StoreUnavailable, TaskFinished, TaskStatus
from .rest import EVENTS, TASKS, SupabaseRest
from .writer import LEASE, TaskWriter

log = logging.getLogger(__name__)

SCAN = 500  # started tasks looked at per sweep
STARTED = ("running", "canceling")  # a queued task being canceled is ended by its canceler
PAGES = 10  # pages of new events read per sweep, at most


class Leases:
    """One round per lease interval: renew this process's leases, then sweep for orphans."""

    def __init__(self, rest: SupabaseRest, writer: TaskWriter, lease_seconds: float,
                 orphan_after: float, clock: Callable[[], float] = time.monotonic):
        self.rest = rest
        self.writer = writer
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.sweeper = OrphanSweeper(rest, writer, orphan_after, clock)
        self._next_round = 0.0

    def maintain(self) -> list[Event]:
        """Run a round if one is due; return the terminal events of the orphans it ended.

        Raise StoreUnavailable if Supabase does not answer (the next round is not sooner)."""
        if self.clock() < self._next_round:
            return []
        self._next_round = self.clock() + self.lease_seconds
        self.renew()
        return self.sweeper.sweep()

    def renew(self) -> int:
        """Write a ``lease`` event for each owned task silent for a lease interval."""
        due = self.writer.silent(self.lease_seconds)
        if due:
            self.rest.run(self.rest.table(EVENTS).insert(
                [{"task_id": t, "kind": LEASE, "data_json": {}} for t in due]))
            self.writer.wrote(due)
        return len(due)

    def restart(self) -> None:
        """After a gap in what this process saw of other tasks' leases, count anew."""
        self.sweeper.restart()


class OrphanSweeper:
    """Finds unfinished tasks that no process renews, and ends them."""

    def __init__(self, rest: SupabaseRest, writer: TaskWriter, orphan_after: float,
                 clock: Callable[[], float] = time.monotonic):
        self.rest = rest
        self.writer = writer
        self.orphan_after = orphan_after
        self.clock = clock
        self._watermark: int | None = None  # the newest event id seen so far
        self._quiet_since: dict[int, float] = {}

    def reason(self) -> str:
        return (f"orphaned: the process running it stopped renewing its lease for "
                f"{self.orphan_after:g}s (it crashed, was killed or lost Supabase)")

    def restart(self) -> None:
        """Forget every quiet time: after a gap in what this process saw, count anew."""
        self._quiet_since.clear()

    def sweep(self) -> list[Event]:
        """One pass; return the terminal events of the tasks it ended."""
        try:
            candidates = self._unowned_unfinished()
            self._note_activity(candidates)
        except StoreUnavailable:
            self.restart()
            raise
        now = self.clock()
        for task_id in list(self._quiet_since):
            if task_id not in candidates:
                del self._quiet_since[task_id]
        for task_id in candidates:
            self._quiet_since.setdefault(task_id, now)
        orphans = [t for t, since in self._quiet_since.items() if now - since >= self.orphan_after]
        ended = []
        for task_id in orphans:
            event = self._end(task_id)
            if event is not None:
                ended.append(event)
        return ended

    def _unowned_unfinished(self) -> set[int]:
        rows = self.rest.run(self.rest.table(TASKS).select("id").in_("status", STARTED)
                             .order("id").limit(SCAN))
        return {row["id"] for row in rows if not self.writer.owns(row["id"])}

    def _note_activity(self, candidates: set[int]) -> None:
        """Restart the quiet time of every candidate with an event newer than the watermark."""
        if self._watermark is None:
            rows = self.rest.run(self.rest.table(EVENTS).select("id").order("id", desc=True)
                                 .limit(1))
            self._watermark = rows[0]["id"] if rows else 0
            return
        if not candidates:
            return
        for _ in range(PAGES):
            rows = self.rest.run(
                self.rest.table(EVENTS).select("id,task_id").in_("task_id", sorted(candidates))
                .gt("id", self._watermark).order("id").limit(1000))
            for row in rows:
                self._quiet_since.pop(row["task_id"], None)
                self._watermark = max(self._watermark, row["id"])
            if len(rows) < 1000:
                return

    def _end(self, task_id: int) -> Event | None:
        self._quiet_since.pop(task_id, None)
        try:
            event = self.writer.finish(task_id, TaskStatus.FAILED, {"reason": self.reason()})
        except TaskFinished:
            return None  # it ended meanwhile (its owner, or another sweeper)
        log.warning("task %s: ended as failed: %s", task_id, self.reason())
        return event
