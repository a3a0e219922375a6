"""The shared queue: a queued task belongs to no process, and any process may claim it.

A process with a free worker lists the oldest queued tasks (:meth:`SharedQueue.claimable`:
one read of ``va_tasks`` that also counts every queued row, one read of their ``created``
events), picks one it can run, and claims it with a conditional update of that one row,
``status=eq.queued`` to ``running`` with ``Prefer: return=representation``. PostgREST makes
it one ``UPDATE``: exactly one process gets the row back, and becomes the task's writer.

Only a task whose ``created`` event is stored is listed. Its creator writes that event
after inserting the row; a claimer that started the task before then could write its
``status`` event with a smaller id than ``created``, or commit it first, and a stream paging
by id would miss one of them. Once the ``created`` event is read, any id taken later is
larger.

A claim that got no answer may have been applied. If the row then reads ``running`` nobody
can tell whose claim it was, so this process does not run it: if it was its own, the task
has no writer and ends ``failed`` as an orphan (:mod:`.leases`), as after a crash.
"""

from __future__ import annotations

import threading
from typing import Any

from ..base import (
    TERMINAL_KINDS,
    ClaimedElsewhere,
    Event,
    Task,
    TaskFinished,
    TaskNotFound,
    TaskStatus,
)
from .rest import (
    EVENTS,
    TASK_COLUMNS,
    TASKS,
    SupabaseError,
    SupabaseRest,
    event_from_row,
    task_from_row,
)

KEEP_CREATED = 10_000  # created events kept for the claims to come (cleared beyond)


class SharedQueue:
    """Lists and claims the queued tasks of the shared store."""

    def __init__(self, rest: SupabaseRest):
        self._rest = rest
        self._lock = threading.Lock()
        self._created: dict[int, Event] = {}  # listed (or created here), not claimed yet

    def remember(self, created: Event) -> None:
        """Keep a task's ``created`` event for its claim (it rebuilds the task)."""
        with self._lock:
            if len(self._created) >= KEEP_CREATED:
                self._created.clear()
            self._created[created.task_id] = created

    def created(self, task_id: int) -> Event | None:
        with self._lock:
            return self._created.pop(task_id, None)

    def claimable(self, limit: int, after_id: int = 0) -> tuple[list[Task], int]:
        query = (self._rest.table(TASKS).select(",".join(TASK_COLUMNS), count="exact")
                 .eq("status", TaskStatus.QUEUED.value))
        if after_id:
            query = query.gt("id", after_id)
        query = query.order("id").limit(limit)
        rows, total = self._rest.run_counted(query)
        if not rows:
            return [], total
        created = self._rest.run(self._rest.table(EVENTS).select("*").eq("kind", "created")
                                 .in_("task_id", [row["id"] for row in rows])
                                 .limit(len(rows)))
        events = {event.task_id: event for event in map(event_from_row, created)}
        for event in events.values():
            self.remember(event)
        return [task_from_row(row, [events[row["id"]]]) for row in rows
                if row["id"] in events], total

    def lost(self, task_id: int) -> None:
        """After a claim that got no row: ClaimedElsewhere if another process started the
        task, TaskFinished if it ended (a canceled queued task is ``canceling`` until its
        canceler has written its end), TaskNotFound if it is gone."""
        rows = self._rest.run(self._rest.table(TASKS).select("status").eq("id", task_id))
        if not rows:
            raise TaskNotFound(f"task {task_id} not found")
        status = rows[0]["status"]
        if status == "running":
            raise ClaimedElsewhere(task_id)
        if status == "canceling":
            # A started task being canceled, or a queued one: was it started?
            started = self._rest.run(self._rest.table(EVENTS).select("id").eq("task_id", task_id)
                                     .eq("kind", "status").limit(1))
            if started:
                raise ClaimedElsewhere(task_id)
        raise TaskFinished(task_id, TaskStatus(status) if status in TERMINAL_KINDS
                           else TaskStatus.CANCELED)

    def claim_row(self, task_id: int) -> list[dict[str, Any]]:
        """``queued -> running`` on the task's row: the row if this process won it, [] if the
        task was not queued. ClaimedElsewhere when a claim without an answer left it
        running: it may have been anyone's."""
        start = self._rest.table(TASKS).update({"status": "running"}).eq("id", task_id)
        try:
            return self._rest.run(start.eq("status", "queued"))
        except SupabaseError as error:
            if not error.ambiguous:
                raise
        rows = self._rest.run(self._rest.table(TASKS).select(",".join(TASK_COLUMNS))
                              .eq("id", task_id))
        if rows and rows[0]["status"] == "queued":
            return self._rest.run(self._rest.table(TASKS).update({"status": "running"})
                                  .eq("id", task_id).eq("status", "queued"))
        if rows and rows[0]["status"] in ("running", "canceling"):
            raise ClaimedElsewhere(task_id)
        return []
