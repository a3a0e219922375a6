"""The Supabase store: tasks in ``va_tasks``, events in ``va_task_events``, shared by processes.

A task row holds only ``id, created_at, title, status``; the rest is derived from the task's
lifecycle events (see :mod:`app.store.base`). The row's status may also be ``canceling``: a cancel
asked for, from any process, that the process running the task has not acted on yet; the API
shows it as ``cancel_requested``; who asked is in ``va_task_cancels`` (written before the
flag, read by the process running the task). Queued tasks wait for any process to claim
them (:mod:`.queue`). Who writes what (one writer per task's events), how streams poll, how
outages and orphans are handled: :mod:`.writer`, :mod:`.pollers`, :mod:`.leases`, and
``docs/supabase.md``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any

from ...background import PerProcessThreads
from ..base import (
    LIFECYCLE_KINDS,
    TERMINAL_KINDS,
    Event,
    StoreUnavailable,
    Task,
    TaskFinished,
    TaskNotFound,
    TaskStatus,
    TaskStore,
    canceled_data,
)
from .groups import SupabaseGroupLocks
from .leases import Leases
from .pollers import PollerHub
from .queue import SharedQueue
from .rest import (
    CANCELS,
    EVENTS,
    TASK_COLUMNS,
    TASKS,
    SupabaseError,
    SupabaseRest,
    event_from_row,
    task_from_row,
)
from .schema import check_schema
from .workers import SupabaseWorkers
from .writer import LEASE, TaskWriter

log = logging.getLogger(__name__)

_ROW_FILTER = {TaskStatus.QUEUED: ("queued", "canceling"),
               TaskStatus.RUNNING: ("running", "canceling")}
FOREIGN_KEY_VIOLATION = "23503"
# Created events read per request when listing one creator's tasks with a status filter
# (without one, every created event is a task to show: a page of ``limit`` is enough).
CREATOR_PAGE = 200


class SupabaseStore(TaskStore):
    """Tasks and events in Supabase through the official client."""

    shared_queue = True

    def __init__(self, url: str, key: str, *, poll_seconds: float, timeout: float,
                 lease_seconds: float, orphan_seconds: float, outbox_events: int):
        self.cancel_poll_seconds = poll_seconds  # the executor's watcher follows it
        self.lease_seconds = lease_seconds
        self._rest = SupabaseRest(url, key, timeout)
        # A stream that saw the end asks get_task next: it must not get a stale "running".
        self._hub = PollerHub(self._fetch_tasks_events, poll_seconds,
                              linger=max(5.0, 4 * poll_seconds), on_ended=self._forget)
        # Each stored event of a watched task nudges the hub here: this process's streams
        # need not wait for its next round of reads.
        self._writer = TaskWriter(self._rest, outbox_events, poll_seconds, self._forget,
                                  on_stored=self._hub.nudge)
        self._leases = Leases(self._rest, self._writer, lease_seconds, orphan_seconds)
        self._group_locks = SupabaseGroupLocks(self._rest)
        self._queue = SharedQueue(self._rest)
        self._workers = SupabaseWorkers(self._rest)
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[float, Task]] = {}  # get_task answers, one poll long
        self._fetching: dict[int, threading.Lock] = {}
        self._known: set[int] = set()  # task ids seen to exist (until retention deletes them)
        self._cancel_flags: dict[int, bool] = {}
        self._cancel_read_at = float("-inf")
        self._stopping = threading.Event()
        self._maintainer = PerProcessThreads(self._maintain, "ops-supabase")

    @classmethod
    def from_settings(cls, settings) -> SupabaseStore:
        return cls(settings.supabase_url, settings.supabase_key,
                   poll_seconds=settings.supabase_poll_seconds,
                   timeout=settings.supabase_timeout_seconds,
                   lease_seconds=settings.supabase_lease_seconds,
                   orphan_seconds=settings.supabase_orphan_seconds,
                   outbox_events=settings.supabase_outbox_events)

    # -- the contract ---------------------------------------------------------------------

    def check(self) -> None:
        check_schema(self._rest)

    def create_task(self, title, body, runner, extra=None, created_by=None):
        self._start()
        row = self._rest.run(self._rest.table(TASKS).insert(
            {"title": title, "status": TaskStatus.QUEUED.value}))[0]
        task_id = row["id"]
        self._known.add(task_id)
        self._writer.own(task_id)
        data = {"body": body, "runner": runner, **(extra or {})}
        if created_by is not None:
            data["created_by"] = created_by
        created = self._writer.append(task_id, "created", data)
        if created.id:
            # It is in the shared queue now: whichever process claims it writes the rest.
            self._writer.release(task_id)
            self._queue.remember(created)
        else:
            self._writer.hand_off(task_id)  # buffered: written first, then let go
        return task_from_row(row, [created])

    def claimable(self, limit, after_id=0):
        self._start()
        return self._queue.claimable(limit, after_id)

    def get_task(self, task_id):
        self._start()
        cached = self._cached(task_id)
        if cached is not None:
            return cached
        with self._lock:
            fetching = self._fetching.setdefault(task_id, threading.Lock())
        with fetching:  # one read for all the callers asking at once
            cached = self._cached(task_id)
            if cached is not None:
                return cached
            return self._read_and_cache(task_id)

    def list_tasks(self, limit, status=None, before_id=None, created_by=None):
        self._start()
        if created_by is not None:
            rows = self._creator_rows(limit, status, before_id, created_by)
        else:
            query = self._rest.table(TASKS).select(",".join(TASK_COLUMNS))
            if status is not None:
                query = query.in_("status", _ROW_FILTER.get(status, (status.value,)))
            if before_id is not None:
                query = query.lt("id", before_id)
            rows = self._rest.run(query.order("id", desc=True).limit(limit))
        if not rows:
            return []
        events = self._lifecycle([row["id"] for row in rows])
        tasks = self._group_holders([task_from_row(row, events.get(row["id"], []))
                                     for row in rows])
        return [t for t in tasks if status is None or t.status == status]

    def _creator_rows(self, limit: int, status: TaskStatus | None, before_id: int | None,
                      created_by: str) -> list[dict[str, Any]]:
        """The rows of up to ``limit`` tasks ``created_by`` the actor, newest first: page
        through the actor's ``created`` events (an index serves them), then read those
        tasks' rows (with the status filter), until the page is full or none are left."""
        page = limit if status is None else max(limit, CREATOR_PAGE)
        rows: list[dict[str, Any]] = []
        while len(rows) < limit:
            query = (self._rest.table(EVENTS).select("task_id").eq("kind", "created")
                     .eq("data_json->>created_by", created_by))
            if before_id is not None:
                query = query.lt("task_id", before_id)
            task_ids = [row["task_id"] for row in
                        self._rest.run(query.order("task_id", desc=True).limit(page))]
            if task_ids:
                tasks = (self._rest.table(TASKS).select(",".join(TASK_COLUMNS))
                         .in_("id", task_ids))
                if status is not None:
                    tasks = tasks.in_("status", _ROW_FILTER.get(status, (status.value,)))
                found = self._rest.run(tasks.order("id", desc=True).limit(page))
                rows.extend(found[:limit - len(rows)])
            if len(task_ids) < page:
                break
            before_id = task_ids[-1]
        return rows

    def mark_running(self, task_id, worker=None):
        self._start()
        rows = self._queue.claim_row(task_id)
        self._forget(task_id)
        if not rows:
            self._queue.lost(task_id)  # one read: claimed elsewhere, or ended
        created = self._queue.created(task_id) or self._writer.created_event(task_id)
        self._writer.own(task_id, created)
        data = {"status": TaskStatus.RUNNING.value}
        if worker is not None:
            data["worker"] = worker
        event = self._writer.append(task_id, "status", data, running=True)
        lifecycle = [created, event] if created else self._lifecycle([task_id]).get(task_id, [])
        return task_from_row(rows[0], lifecycle)

    def append_event(self, task_id, kind, data):
        if kind in TERMINAL_KINDS:
            raise ValueError(f"terminal event {kind!r} must go through finish()")
        if kind == LEASE:
            raise ValueError(f"{LEASE!r} events are the store's own")
        self._start()
        return self._writer.append(task_id, kind, data)

    def append_events(self, task_id, events):
        for kind, _ in events:
            if kind in TERMINAL_KINDS or kind == LEASE:
                raise ValueError(f"{kind!r} events cannot be appended")
        self._start()
        return self._writer.append_many(task_id, events)

    def finish(self, task_id, status, data):
        status = TaskStatus(status)
        if not status.is_terminal:
            raise ValueError(f"{status.value} is not a terminal status")
        self._start()
        try:
            return self._writer.finish(task_id, status, data)
        finally:
            self._forget(task_id)

    def request_cancel(self, task_id, actor=None):
        self._start()

        def flag(*statuses: str) -> bool:
            return bool(self._rest.run(self._rest.table(TASKS).update({"status": "canceling"})
                                       .eq("id", task_id).in_("status", statuses)))

        self._forget(task_id)
        queued = flag("queued")
        if not queued and actor is not None:
            # Running (or ended): who asks is written before the flag, so that the process
            # running the task finds the name once it sees the flag. The first asker wins.
            self._record_requester(task_id, actor)
        if queued:
            # It had not started (and now cannot): this process writes its end.
            try:
                ended = self._writer.finish(task_id, TaskStatus.CANCELED,
                                            canceled_data("canceled before it started", actor))
            except TaskFinished:
                pass
            else:
                self._task_ended(task_id, TaskStatus.CANCELED, ended.data, ended.created_at)
        elif flag("running", "canceling"):
            self._cancel_read_at = float("-inf")  # this process's own flags are stale
        else:
            task = self._read_task(task_id)
            if task.status.is_terminal:
                raise TaskFinished(task_id, task.status)
        # Read afresh: a read started before the flag (a stream opening) may still be
        # on its way into the cache, and the caller must see its own cancel.
        return self._read_and_cache(task_id)

    def is_cancel_requested(self, task_id):
        self._start()
        running = self._writer.running_ids()
        if task_id not in running:
            rows = self._rest.run(self._rest.table(TASKS).select("status").eq("id", task_id))
            if not rows:
                raise TaskNotFound(f"task {task_id} not found")
            return rows[0]["status"] == "canceling"
        # One read answers for all of this process's running tasks: the executor's watcher
        # asks for each of them once per poll interval, so that is one read per interval.
        with self._lock:
            if task_id not in self._cancel_flags and self._cancel_read_at > float("-inf"):
                # Started since the last read (the executor asks once at the start): its
                # start, queued -> running, found no cancel, and a later one (not this
                # process's own: that makes the flags stale) is read at the watcher's next
                # round, as for the others. No read per start.
                self._cancel_flags[task_id] = False
                return False
            if time.monotonic() - self._cancel_read_at < self.cancel_poll_seconds / 2:
                return self._cancel_flags[task_id]
        try:
            rows = self._rest.run(self._rest.table(TASKS).select("id,status").in_("id", running))
        except StoreUnavailable:
            # Supabase is away: the last flags stand (a cancel cannot arrive meanwhile), and
            # the executor's watcher is not told twenty times a second.
            with self._lock:
                self._cancel_read_at = time.monotonic()
                return self._cancel_flags.get(task_id, False)
        with self._lock:
            self._cancel_flags = {row["id"]: row["status"] == "canceling" for row in rows}
            self._cancel_read_at = time.monotonic()
            return self._cancel_flags.get(task_id, False)

    def _record_requester(self, task_id: int, actor: str) -> None:
        try:
            self._rest.run(self._rest.table(CANCELS).upsert(
                {"task_id": task_id, "requested_by": actor}, on_conflict="task_id",
                ignore_duplicates=True, returning="minimal"))
        except SupabaseError as error:
            if error.code == FOREIGN_KEY_VIOLATION:
                raise TaskNotFound(f"task {task_id} not found") from None
            raise

    def cancel_requester(self, task_id):
        self._start()
        rows = self._rest.run(self._rest.table(CANCELS).select("requested_by")
                              .eq("task_id", task_id))
        return rows[0]["requested_by"] if rows else None

    def events_after(self, task_id, after_id, limit=100):
        self._start()
        events = self._fetch_events(task_id, after_id, limit)
        if not events and task_id not in self._known:
            self._read_task(task_id)  # TaskNotFound for an unknown task
        return events

    def wait_events(self, task_id, after_id, timeout, limit=100):
        self._start()
        if timeout <= 0:
            return self.events_after(task_id, after_id, limit)
        if task_id not in self._known:
            self._read_task(task_id)
        return self._hub.wait(task_id, after_id, timeout, limit)

    def purge_finished(self, before, limit):
        self._start()
        # A terminal event is written before the row's status: its time is the task's end.
        ended = self._rest.run(self._rest.table(EVENTS).select("task_id")
                               .in_("kind", sorted(TERMINAL_KINDS))
                               .lt("created_at", before.isoformat()).order("id").limit(limit))
        task_ids = [row["task_id"] for row in ended]
        if not task_ids:
            return 0
        # Deleting the rows deletes their events and cancel requesters too (on delete
        # cascade).
        self._rest.run(self._rest.table(TASKS).delete(returning="minimal").in_("id", task_ids))
        with self._lock:
            self._known.difference_update(task_ids)
        for task_id in task_ids:
            self._forget(task_id)
        return len(task_ids)

    def group_locks(self):
        return self._group_locks

    def worker_registry(self):
        return self._workers

    def close(self) -> None:
        self._stopping.set()
        self._hub.close()
        self._maintainer.stop(self._rest.timeout * 2)
        left = self._writer.flush() if self._writer.pending else 0
        if left:
            log.error("closing with %d events not written to Supabase: their tasks will end "
                      "as orphans", left)
        self._rest.close()

    # -- reading --------------------------------------------------------------------------

    def _fetch_events(self, task_id: int, after_id: int, limit: int) -> list[Event]:
        rows = self._rest.run(self._rest.table(EVENTS).select("*").eq("task_id", task_id)
                              .gt("id", after_id).neq("kind", LEASE).order("id").limit(limit))
        return [event_from_row(row) for row in rows]

    def _fetch_tasks_events(self, task_ids: list[int], after_id: int, limit: int,
                            before_id: int | None = None,
                            newest_first: bool = False) -> list[Event]:
        """The events of all these tasks after ``after_id`` (and before ``before_id``), in
        id order or newest first (the hub's reads)."""
        query = (self._rest.table(EVENTS).select("*").in_("task_id", task_ids)
                 .gt("id", after_id).neq("kind", LEASE))
        if before_id is not None:
            query = query.lt("id", before_id)
        rows = self._rest.run(query.order("id", desc=newest_first).limit(limit))
        return [event_from_row(row) for row in rows]

    def _read_task(self, task_id: int) -> Task:
        rows = self._rest.run(self._rest.table(TASKS).select(",".join(TASK_COLUMNS))
                              .eq("id", task_id))
        if not rows:
            raise TaskNotFound(f"task {task_id} not found")
        self._known.add(task_id)
        return self._group_holders(
            [task_from_row(rows[0], self._lifecycle([task_id]).get(task_id, []))])[0]

    def _group_holders(self, tasks: list[Task]) -> list[Task]:
        """Queued tasks of a concurrency group wait for the task holding its lock: nobody
        writes a ``waiting`` event for a task of the shared queue, so it is read here."""
        groups = {t.extra["concurrency_group"] for t in tasks if t.status == TaskStatus.QUEUED
                  and t.extra.get("concurrency_group")}
        if not groups:
            return tasks
        holders = self._group_locks.holders(sorted(groups))
        return [dataclasses.replace(t, waiting_for=holders.get(t.extra["concurrency_group"]))
                if t.status == TaskStatus.QUEUED and t.extra.get("concurrency_group")
                and holders.get(t.extra["concurrency_group"]) != t.id else t for t in tasks]

    def _lifecycle(self, task_ids: list[int]) -> dict[int, list[Event]]:
        """The tasks' lifecycle events, in order. A page holds four a task and more, enough
        unless tasks waited for their concurrency group several times: then more pages."""
        page = 4 * len(task_ids) + 8
        found: dict[int, list[Event]] = {}
        after = 0
        while True:
            rows = self._rest.run(self._rest.table(EVENTS).select("*").in_("task_id", task_ids)
                                  .in_("kind", LIFECYCLE_KINDS).gt("id", after).order("id")
                                  .limit(page))
            for row in rows:
                event = event_from_row(row)
                found.setdefault(event.task_id, []).append(event)
            if len(rows) < page:
                return found
            after = rows[-1]["id"]

    def _cached(self, task_id: int) -> Task | None:
        with self._lock:
            entry = self._cache.get(task_id)
        if entry is not None and time.monotonic() - entry[0] < self.cancel_poll_seconds:
            return entry[1]
        return None

    def _read_and_cache(self, task_id: int) -> Task:
        """Read the task; cache it unless a read that started later is cached already."""
        started = time.monotonic()
        task = self._read_task(task_id)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
                self._fetching.clear()
            entry = self._cache.get(task_id)
            if entry is None or entry[0] <= started:
                self._cache[task_id] = (started, task)
        return task

    def _forget(self, task_id: int) -> None:
        with self._lock:
            self._cache.pop(task_id, None)

    # -- background work ------------------------------------------------------------------

    def _start(self) -> None:
        """Start the maintenance thread on first use in this process (after the fork)."""
        if not self._stopping.is_set():
            self._maintainer.start()

    def _maintain(self) -> None:
        """Write buffered events, renew leases and sweep orphans until closed."""
        while not self._stopping.wait(self.cancel_poll_seconds):
            try:
                if self._writer.pending:
                    self._writer.flush()
                for ended in self._leases.maintain():
                    self._forget(ended.task_id)
                    self._task_ended(ended.task_id, TaskStatus.FAILED, ended.data,
                                     ended.created_at)
            except StoreUnavailable as error:
                self._leases.restart()  # our view of other tasks' leases has a gap
                log.debug("maintenance deferred: %s", error)
            except Exception:
                log.exception("Supabase store maintenance failed")
