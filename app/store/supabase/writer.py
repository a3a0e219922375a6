"""The single writer of this process's tasks' events, with an outbox for Supabase outages.

Event ids come from one global sequence, so a reader paging by ``id > last`` would skip an
event committed late behind a higher id. Each task therefore has one writer at a time (the
process that created and runs it, or the one that cancels it while queued or ends it as an
orphan), and this writer sends a task's events one after the other.

Consecutive events of a task go out in one bulk insert (PostgREST takes an array; one
``INSERT`` takes their ids from the sequence in the array's order): a runner's batch of
``log`` events, and the backlog after an outage, at most ``MAX_BULK_ROWS`` rows or
``MAX_BULK_BYTES`` of JSON a request.

When Supabase cannot be reached, writes wait in a per-task FIFO (the outbox) and go out in
order once it answers again; the log says when buffering starts, when the bound is reached
and when the backlog is written. A write that may have been applied although no answer came
back is checked before it is sent again, so nothing is written twice. The terminal event is
the claim on a task's end: the migration's unique index admits one per task.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ..base import TERMINAL_KINDS, Event, StoreUnavailable, TaskFinished, TaskStatus
from .rest import EVENTS, TASKS, UNIQUE_VIOLATION, SupabaseError, SupabaseRest, event_from_row

log = logging.getLogger(__name__)

UNFINISHED = ("queued", "running", "canceling")
LEASE = "lease"
MAX_BULK_ROWS = 500
MAX_BULK_BYTES = 4 * 1024 * 1024


@dataclasses.dataclass
class _Op:
    kind: str  # an event kind, or "" for the status update that follows a terminal event
    data: dict[str, Any]
    ambiguous: bool = False  # an earlier attempt got no answer and may have been applied
    stored: Event | None = None
    # The ops of one bulk insert that got no answer: all of them got in, or none did.
    attempt: object | None = None
    size: int = 0  # its JSON's length, once a bulk insert needed it

    @property
    def bulk(self) -> bool:
        """Whether it may share an insert with its neighbours (a plain event)."""
        return bool(self.kind) and self.kind not in TERMINAL_KINDS


@dataclasses.dataclass
class _Owned:
    lock: threading.Lock
    created: Event | None = None  # the created event, kept to rebuild the task cheaply
    last_id: int | None = None  # the last visible event this writer knows is stored
    last_write: float = 0.0
    running: bool = False
    handed_off: bool = False  # queued, in the shared queue: let go once its backlog is written
    pending: collections.deque = dataclasses.field(default_factory=collections.deque)


class TaskWriter:
    """Writes events of the tasks this process owns; buffers them while Supabase is away."""

    def __init__(self, rest: SupabaseRest, max_pending: int, retry_after: float,
                 on_change: Callable[[int], None],
                 on_stored: Callable[[int], None] = lambda task_id: None,
                 clock: Callable[[], float] = time.monotonic):
        self.rest = rest
        self.max_pending = max_pending
        self.retry_after = retry_after
        self._on_change = on_change  # told when a task's status was set
        self._on_stored = on_stored  # told when an event of a task is stored, buffered or not
        self._clock = clock
        self._lock = threading.Lock()
        self._owned: dict[int, _Owned] = {}
        self._pending = 0  # buffered event writes, all tasks
        self._down_until = 0.0  # after a failure, writes queue up until then without trying
        self._buffering = False
        self._full_logged = False

    # -- ownership ------------------------------------------------------------------------

    def own(self, task_id: int, created: Event | None = None) -> _Owned:
        with self._lock:
            owned = self._owned.get(task_id)
            if owned is None:
                owned = self._owned[task_id] = _Owned(threading.Lock(), last_write=self._clock())
            if created is not None:
                owned.created, owned.last_id = created, created.id
            return owned

    def owns(self, task_id: int) -> bool:
        with self._lock:
            return task_id in self._owned

    def release(self, task_id: int) -> None:
        """Stop writing for the task (it ended, or another process ended it)."""
        with self._lock:
            owned = self._owned.pop(task_id, None)
            if owned is not None:
                self._pending -= sum(1 for op in owned.pending if op.kind)
                owned.pending.clear()

    def hand_off(self, task_id: int) -> None:
        """The task goes to the shared queue once what waits to be written for it is written
        (its ``created`` event was buffered): release it then."""
        with self._lock:
            owned = self._owned.get(task_id)
            if owned is None:
                return
            if not owned.pending:
                del self._owned[task_id]
            else:
                owned.handed_off = True

    def created_event(self, task_id: int) -> Event | None:
        with self._lock:
            owned = self._owned.get(task_id)
            return owned.created if owned else None

    def running_ids(self) -> list[int]:
        with self._lock:
            return [t for t, o in self._owned.items() if o.running]

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    # -- writing --------------------------------------------------------------------------

    def append(self, task_id: int, kind: str, data: dict[str, Any], *,
               running: bool = False) -> Event:
        """Write a non-terminal event now, or buffer it (returning it with id 0)."""
        owned = self.own(task_id)
        if running:
            owned.running, owned.handed_off = True, False
        with owned.lock:
            self._refuse_when_full()
            return self._send(task_id, owned, _Op(kind, data))

    def _refuse_when_full(self) -> None:
        """StoreUnavailable when the outbox holds its maximum of events waiting."""
        with self._lock:
            if self._pending >= self.max_pending:
                self._log_full()
                raise StoreUnavailable(
                    f"Supabase is unreachable and {self._pending} events are waiting to be "
                    f"written (OPS_SUPABASE_OUTBOX_EVENTS={self.max_pending})")

    def append_many(self, task_id: int, events: list[tuple[str, dict[str, Any]]]
                    ) -> list[Event]:
        """Write non-terminal events now in as few inserts as the bounds allow, or buffer
        them (returning those with id 0)."""
        if not events:
            return []
        owned = self.own(task_id)
        ops = [_Op(kind, data) for kind, data in events]
        with owned.lock:
            self._refuse_when_full()
            if owned.pending or self._clock() < self._down_until:
                for op in ops:
                    self._enqueue(owned, op)
                if self._clock() >= self._down_until:
                    self._flush_task(task_id, owned)
            else:
                self._send_bulk(task_id, owned, ops)
            return [op.stored or self._placeholder(task_id, op) for op in ops]

    def _send_bulk(self, task_id: int, owned: _Owned, ops: list[_Op]) -> None:
        """Insert ``ops`` in bounded groups; from a failure on, buffer the rest."""
        start = 0
        while start < len(ops):
            group = _group(ops, start)
            try:
                self._apply_group(task_id, owned, group)
            except SupabaseError as error:
                if error.code is not None and not error.ambiguous:
                    raise  # the database refused it; sending it again would not help
                if error.ambiguous:
                    _mark_ambiguous(group)
                self._mark_down(error)
                for op in ops[start:]:
                    self._enqueue(owned, op)
                return
            start += len(group)

    def finish(self, task_id: int, status: TaskStatus, data: dict[str, Any]) -> Event:
        """Claim the task's end with its terminal event, then set its status.

        Raise TaskFinished if another terminal event is already stored."""
        owned = self.own(task_id)
        with owned.lock:
            try:
                event = self._send(task_id, owned, _Op(status.value, data))
                self._send(task_id, owned, _Op("", {"status": status.value}))
            except TaskFinished:
                self.release(task_id)
                raise
            if not owned.pending:
                self.release(task_id)
            return event

    def _send(self, task_id: int, owned: _Owned, op: _Op) -> Event:
        """Send ``op`` after the task's backlog; buffer it if Supabase does not answer."""
        if owned.pending or self._clock() < self._down_until:
            self._enqueue(owned, op)
            if self._clock() >= self._down_until:
                self._flush_task(task_id, owned)
            return op.stored or self._placeholder(task_id, op)
        try:
            return self._apply(task_id, owned, op)
        except SupabaseError as error:
            if error.code is not None and not error.ambiguous:
                raise  # the database refused it; sending it again would not help
            op.ambiguous = error.ambiguous
            self._mark_down(error)
            self._enqueue(owned, op)
            return self._placeholder(task_id, op)

    def flush(self) -> int:
        """Try to write every task's backlog in order; return how many writes still wait."""
        with self._lock:
            backlog = [(t, o) for t, o in self._owned.items() if o.pending]
        for task_id, owned in backlog:
            with owned.lock:
                self._flush_task(task_id, owned)
        return self.pending

    def _flush_task(self, task_id: int, owned: _Owned) -> None:
        while owned.pending:
            group = _group(owned.pending, 0)
            op = group[0]
            try:
                self._apply_group(task_id, owned, group)
            except TaskFinished as lost:
                log.warning("task %s: ended elsewhere as %s; its buffered writes are dropped",
                            task_id, lost.status.value)
                self.release(task_id)
                return
            except SupabaseError as error:
                if error.code is None or error.ambiguous:
                    if error.ambiguous:
                        _mark_ambiguous(group)
                    self._mark_down(error)
                    return
                log.error("task %s: Supabase refused %d buffered %r write(s), dropped: %s",
                          task_id, len(group), op.kind or "status", error)
            with self._lock:
                for _ in group:
                    owned.pending.popleft()
                self._pending -= sum(1 for done in group if done.kind)
                drained = self._pending == 0 and self._buffering
                if drained:
                    self._buffering = self._full_logged = False
            if drained:
                log.warning("Supabase answers again: the buffered events are written")
            if not owned.pending and (not group[-1].kind or owned.handed_off):
                # Its final status is set, or it waits in the shared queue: nothing more to
                # write from here.
                self.release(task_id)

    def _apply_group(self, task_id: int, owned: _Owned, ops: list[_Op]) -> None:
        """Write ``ops`` (one op, or plain events for one bulk insert)."""
        if len(ops) == 1:
            self._apply(task_id, owned, ops[0])
            return
        last = ops[-1]
        if last.ambiguous and (stored := self._find_stored(task_id, owned, last)) is not None:
            # One INSERT is atomic: its last row stored means all of them are.
            events = [None] * (len(ops) - 1) + [stored]
        else:
            rows = self.rest.run(self.rest.table(EVENTS).insert(
                [{"task_id": task_id, "kind": op.kind, "data_json": op.data} for op in ops]))
            events = sorted((event_from_row(row) for row in rows), key=lambda e: e.id)
            if len(events) != len(ops):
                raise SupabaseError(f"a bulk insert of {len(ops)} events answered "
                                    f"{len(events)} rows", ambiguous=True)
        for op, event in zip(ops, events):
            op.stored = event
        owned.last_write = self._clock()
        owned.last_id = max(owned.last_id or 0, events[-1].id)
        self._down_until = 0.0
        self._on_stored(task_id)

    def _apply(self, task_id: int, owned: _Owned, op: _Op) -> Event | None:
        if not op.kind:
            self._set_final_status(task_id, op.data["status"])
            self._down_until = 0.0
            return None
        if op.ambiguous and (stored := self._find_stored(task_id, owned, op)) is not None:
            event = stored
        elif op.kind in TERMINAL_KINDS:
            event = self._insert_terminal(task_id, owned, op)
        else:
            event = self._insert(task_id, op)
        owned.last_write = self._clock()
        owned.last_id = max(owned.last_id or 0, event.id)
        self._down_until = 0.0
        op.stored = event
        self._on_stored(task_id)
        return event

    def _insert(self, task_id: int, op: _Op) -> Event:
        rows = self.rest.run(self.rest.table(EVENTS).insert(
            {"task_id": task_id, "kind": op.kind, "data_json": op.data}))
        return event_from_row(rows[0])

    def _insert_terminal(self, task_id: int, owned: _Owned, op: _Op) -> Event:
        try:
            return self._insert(task_id, op)
        except SupabaseError as error:
            if error.code != UNIQUE_VIOLATION:
                raise
        existing = self._terminal_event(task_id)
        if existing is not None and (existing.kind, existing.data) == (op.kind, op.data) \
                and op.ambiguous:
            return existing  # our own earlier attempt got in
        status = TaskStatus(existing.kind if existing else op.kind)
        self._set_final_status(task_id, status.value)  # repairs a row left behind
        raise TaskFinished(task_id, status)

    def _set_final_status(self, task_id: int, status: str) -> None:
        self.rest.run(self.rest.table(TASKS).update({"status": status})
                      .eq("id", task_id).in_("status", UNFINISHED))
        self._on_change(task_id)

    def _find_stored(self, task_id: int, owned: _Owned, op: _Op) -> Event | None:
        """The event ``op`` wrote, if an earlier attempt that got no answer did get in."""
        if op.kind in TERMINAL_KINDS:
            return None  # the unique index answers that question on insert
        query = self.rest.table(EVENTS).select("*").eq("task_id", task_id).neq("kind", LEASE)
        if owned.last_id is not None:
            query = query.gt("id", owned.last_id)
        rows = self.rest.run(query.order("id", desc=True).limit(1))
        if rows:
            event = event_from_row(rows[0])
            if (event.kind, event.data) == (op.kind, op.data):
                return event
        return None

    def _terminal_event(self, task_id: int) -> Event | None:
        rows = self.rest.run(self.rest.table(EVENTS).select("*").eq("task_id", task_id)
                             .in_("kind", sorted(TERMINAL_KINDS)).limit(1))
        return event_from_row(rows[0]) if rows else None

    # -- leases (see .leases) -------------------------------------------------------------

    def silent(self, seconds: float) -> list[int]:
        """The owned tasks with nothing written for ``seconds`` and nothing waiting (a
        queued task has no lease: it waits for any process to claim it)."""
        now = self._clock()
        with self._lock:
            return [t for t, o in self._owned.items()
                    if o.running and not o.pending and now - o.last_write >= seconds]

    def wrote(self, task_ids: list[int]) -> None:
        """Note that something (a lease) was just written for each of these tasks."""
        now = self._clock()
        with self._lock:
            for task_id in task_ids:
                if task_id in self._owned:
                    self._owned[task_id].last_write = now

    # -- internals ------------------------------------------------------------------------

    def _enqueue(self, owned: _Owned, op: _Op) -> None:
        with self._lock:
            if op.kind:
                if not self._buffering:
                    self._buffering = True
                    log.warning("Supabase is unreachable: buffering the events of running "
                                "tasks (at most %d) until it answers again", self.max_pending)
                self._pending += 1
            owned.pending.append(op)

    def _mark_down(self, error: Exception) -> None:
        self._down_until = self._clock() + self.retry_after
        log.debug("write deferred: %s", error)

    def _log_full(self) -> None:
        if not self._full_logged:
            self._full_logged = True
            log.error("Supabase outbox full (%d events): new events are refused until "
                      "Supabase answers again", self.max_pending)

    @staticmethod
    def _placeholder(task_id: int, op: _Op) -> Event:
        return Event(id=0, task_id=task_id, kind=op.kind, created_at=datetime.now(timezone.utc),
                     data=op.data)


def _group(ops, start: int) -> list[_Op]:
    """The ops from ``start`` that go in one request: one op, or a run of plain events within
    the bulk bounds (those of one unanswered insert stay together, as they were sent)."""
    first = ops[start]
    group = [first]
    if not first.bulk or (first.ambiguous and first.attempt is None):
        return group
    size = _size(first)
    for index in range(start + 1, len(ops)):
        op = ops[index]
        if first.attempt is not None:
            if op.attempt is not first.attempt:
                break
        elif (not op.bulk or op.ambiguous or len(group) >= MAX_BULK_ROWS
              or size + _size(op) > MAX_BULK_BYTES):
            break
        group.append(op)
        size += op.size
    return group


def _size(op: _Op) -> int:
    if not op.size:
        op.size = len(json.dumps(op.data, ensure_ascii=False)) + len(op.kind) + 64
    return op.size


def _mark_ambiguous(group: list[_Op]) -> None:
    """The group's insert got no answer: retry (or find) it as a whole."""
    attempt = object()
    for op in group:
        op.ambiguous = True
        op.attempt = attempt if len(group) > 1 else None
