"""The store contract: tasks and their append-only event logs.

Every backend (the in-process dict, Supabase) implements :class:`TaskStore`; the contract
tests in ``tests/store_contract.py`` run against each. Persisted task columns are only
``id, created_at, title, status``: everything else about a task (its body, runner, times,
error, a cancel request) travels as events and is derived from them, so a backend with those
four columns loses nothing.

Event kinds with a meaning to the store:

- ``created`` (first event; data ``{"body": ..., "runner": ..., "created_by": ..., **extra}``,
  ``created_by`` only when an actor is known)
- ``status`` (data ``{"status": "running", "worker": ...}``): the task started, in the
  process ``worker`` names (``host:pid``; absent when the executor gave none)
- ``done`` / ``failed`` / ``canceled``: the one terminal event; its kind is the final status
  (``failed`` and ``canceled`` carry ``{"reason": ...}``; ``canceled`` also ``canceled_by``
  when an actor asked for it)

- ``waiting`` (data ``{"waiting_for": 12, "concurrency_group": ...}``): the queued task waits
  for task 12 to give back its concurrency group (:mod:`app.store.groups`); ``waiting_for``
  null: it waits no longer. The task shows the last one's ``waiting_for`` until it starts.

Runners add their own kinds (``tick``, ``log``, ...), which the store only keeps.

The locks of concurrency groups come with the store (``group_locks``): in-process for the
in-process store, shared through the database for the Supabase one.

One writer per task's events: after ``create_task`` only the process running the task appends
to its log (``mark_running``, ``append_event``, ``finish``). A store with a *shared queue*
(``shared_queue``, Supabase) lets any process run a queued task: ``claimable`` lists the oldest
queued tasks, and ``mark_running`` is the claim, won by exactly one process; the others get
ClaimedElsewhere. A cancel of a running task is a flag
on the task (``request_cancel``/``is_cancel_requested``), never an event written from elsewhere;
the running process sees it and writes the terminal ``canceled`` event itself. A queued task is
canceled directly: ``mark_running`` and ``request_cancel`` race on the task's status and exactly
one of them wins. Who asked for a cancel is kept beside the flag (``cancel_requester``), so the
running process names the actor in the ``canceled`` event it writes; the first asker is kept.

Some endings are written by a backend of its own accord, not through ``finish``: the cancel of
a queued task, and in the Supabase backend a task that could not start and an orphan failed by
the sweep. A backend reports each such ending, once, to the listener given to
``on_task_ended``; the wrapper that logs and counts state changes
(:class:`app.store.observed.ObservedStore`) sees every ending that way.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .groups import GroupLocks
    from .workers import WorkerRegistry

__all__ = ["ClaimedElsewhere", "Event", "StoreError", "StoreUnavailable", "Task",
           "TaskFinished", "TaskNotFound", "TaskStatus", "TaskStore", "TERMINAL_KINDS",
           "TERMINAL_STATUSES", "WAITING",
           "canceled_data", "isoformat"]

log = logging.getLogger(__name__)


class TaskStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELED})
TERMINAL_KINDS = frozenset(s.value for s in TERMINAL_STATUSES)
WAITING = "waiting"  # a queued task waits for its concurrency group


class StoreError(Exception):
    """Base class of the store's own errors."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached or answered with an error; the request may be retried."""


class TaskNotFound(StoreError):
    """No task has that id."""


class TaskFinished(StoreError):
    """The task is already terminal; ``status`` says how it ended."""

    def __init__(self, task_id: int, status: TaskStatus):
        super().__init__(f"task {task_id} is already {status.value}")
        self.task_id = task_id
        self.status = status


class ClaimedElsewhere(StoreError):
    """Another process started the task first (a store with a shared queue)."""

    def __init__(self, task_id: int):
        super().__init__(f"task {task_id} was started by another process")
        self.task_id = task_id


@dataclasses.dataclass(frozen=True)
class Event:
    id: int
    task_id: int
    kind: str
    created_at: datetime
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "task_id": self.task_id, "kind": self.kind,
                "created_at": isoformat(self.created_at), "data": self.data}


@dataclasses.dataclass(frozen=True)
class Task:
    id: int
    title: str
    status: TaskStatus
    created_at: datetime
    body: str | None = None
    runner: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    cancel_requested: bool = False
    created_by: str | None = None
    canceled_by: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The task it waits for to give back its group, or (shared queue) why no process takes it.
    waiting_for: int | str | None = None
    worker: str | None = None  # the process that runs or ran it (host:pid), when known

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "body": self.body,
            "status": self.status.value, "runner": self.runner,
            "created_at": isoformat(self.created_at),
            "started_at": isoformat(self.started_at),
            "finished_at": isoformat(self.finished_at),
            "error": self.error, "cancel_requested": self.cancel_requested,
            "created_by": self.created_by, "canceled_by": self.canceled_by,
            "concurrency_group": None, "waiting_for": self.waiting_for,
            "worker": self.worker,
            **self.extra,
        }

    @classmethod
    def from_events(cls, task_id: int, title: str, status: TaskStatus, created_at: datetime,
                    events: list[Event], cancel_requested: bool = False) -> Task:
        """Derive a task from its row and its lifecycle events (any superset is fine)."""
        fields: dict[str, Any] = {}
        for event in events:
            if event.kind == "created":
                data = dict(event.data)
                fields["body"] = data.pop("body", None)
                fields["runner"] = data.pop("runner", None)
                fields["created_by"] = data.pop("created_by", None)
                fields["extra"] = data
            elif event.kind == WAITING and not {"started_at", "finished_at"} & set(fields):
                fields["waiting_for"] = event.data.get("waiting_for")
            elif event.kind == "status" and event.data.get("status") == TaskStatus.RUNNING:
                fields["started_at"] = event.created_at
                fields["waiting_for"] = None
                fields["worker"] = event.data.get("worker")
            elif event.kind in TERMINAL_KINDS:
                fields["waiting_for"] = None
                fields["finished_at"] = event.created_at
                if event.kind != TaskStatus.DONE:
                    fields["error"] = event.data.get("reason")
                if event.kind == TaskStatus.CANCELED:
                    fields["canceled_by"] = event.data.get("canceled_by")
        return cls(id=task_id, title=title, status=status, created_at=created_at,
                   cancel_requested=cancel_stays_requested(status, cancel_requested), **fields)


def cancel_stays_requested(status: TaskStatus, requested: bool) -> bool:
    """``cancel_requested`` as the API shows it: a flag on a task that has not ended, and true
    for good once it ended ``canceled`` (a cancel ended it, queued or running). Whether a cancel
    came too late for a task that ended otherwise is not kept: the stored row cannot say."""
    return status == TaskStatus.CANCELED or (requested and not status.is_terminal)


def canceled_data(reason: str, actor: str | None) -> dict[str, Any]:
    """The data of a ``canceled`` event: why, and who asked when known."""
    return {"reason": reason} if actor is None else {"reason": reason, "canceled_by": actor}


LIFECYCLE_KINDS = ("created", "status", WAITING, *sorted(TERMINAL_KINDS))


def isoformat(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with microseconds, e.g. ``2026-11-28T00:40:00.000000Z``."""
    if moment is None:
        return None
    # The same text as strftime("%Y-%m-%dT%H:%M:%S.%fZ"), at a fraction of its cost.
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


EndListener = Callable[[int, TaskStatus, dict[str, Any], datetime], None]


class TaskStore:
    """What every backend provides. All methods are safe to call from many threads/greenlets.

    Methods raise :class:`StoreUnavailable` when the backend cannot answer.
    """

    #: None when only this process can cancel its tasks; else how often a running task's
    #: cancel flag should be read (seconds).
    cancel_poll_seconds: float | None = None

    _end_listener: EndListener | None = None

    @property
    def backend_name(self) -> str:
        """The backend's name (its class name), as ``/ops/stats`` shows it."""
        return type(self).__name__

    def on_task_ended(self, listener: EndListener | None) -> None:
        """Report the endings this store writes of its own accord to ``listener``.

        ``listener(task_id, status, data, finished_at)`` is called once per such ending (a
        queued task canceled; in the Supabase backend also a task that could not start and an
        orphan), after the write, in the thread that made it. Endings written through
        ``finish`` are not reported: its caller knows them. One listener at a time; None
        removes it."""
        self._end_listener = listener

    def _task_ended(self, task_id: int, status: TaskStatus, data: dict[str, Any],
                    finished_at: datetime) -> None:
        """Tell the listener about an ending this backend wrote by itself."""
        listener = self._end_listener
        if listener is None:
            return
        try:
            listener(task_id, status, data, finished_at)
        except Exception:  # the ending is written; a listener's failure must not undo that
            log.exception("task %s: the end listener failed", task_id)

    def check(self) -> None:
        """Raise StoreUnavailable (with a message fit for an operator) unless the store works."""
        raise NotImplementedError

    def create_task(self, title: str, body: str | None, runner: str,
                    extra: dict[str, Any] | None = None, created_by: str | None = None) -> Task:
        """Insert a ``queued`` task and its ``created`` event; return the task.

        ``created_by`` (who asked for it) goes into the ``created`` event when given."""
        raise NotImplementedError

    def get_task(self, task_id: int) -> Task:
        """Return the task, or raise TaskNotFound."""
        raise NotImplementedError

    def list_tasks(self, limit: int, status: TaskStatus | None = None,
                   before_id: int | None = None, created_by: str | None = None) -> list[Task]:
        """Return up to ``limit`` tasks newest first, with ``id < before_id`` when given, and
        only those ``created_by`` that actor when given."""
        raise NotImplementedError

    # True: queued tasks wait in the store for any process sharing it to claim them.
    shared_queue = False

    def claimable(self, limit: int, after_id: int = 0) -> tuple[list[Task], int]:
        """The ``limit`` oldest queued tasks with an id above ``after_id`` (each with what
        its ``created`` event holds), and how many tasks are queued in all. A task whose
        ``created`` event is not stored yet is not listed: it cannot be claimed before it is
        whole."""
        raise NotImplementedError

    def mark_running(self, task_id: int, worker: str | None = None) -> Task:
        """Move a queued task to ``running`` and append its ``status`` event (naming
        ``worker``, the process that runs it): the claim.

        Raise TaskFinished if it ended meanwhile (a cancel won the race), ClaimedElsewhere
        if it started already (another process, or another worker, claimed it first)."""
        raise NotImplementedError

    def append_event(self, task_id: int, kind: str, data: dict[str, Any]) -> Event:
        """Append a non-terminal event to the task's log and return it.

        A store that keeps events to write later while its backend is away (Supabase)
        returns such an event with id 0; its place in the log is kept."""
        raise NotImplementedError

    def append_events(self, task_id: int, events: list[tuple[str, dict[str, Any]]]
                      ) -> list[Event]:
        """Append non-terminal ``(kind, data)`` events in order; return them.

        A backend that can write them in one request (Supabase) does; this one appends each."""
        return [self.append_event(task_id, kind, data) for kind, data in events]

    def finish(self, task_id: int, status: TaskStatus, data: dict[str, Any]) -> Event:
        """End the task: set the terminal ``status`` and append its terminal event.

        Exactly one finish succeeds per task; later calls raise TaskFinished."""
        raise NotImplementedError

    def request_cancel(self, task_id: int, actor: str | None = None) -> Task:
        """Cancel a queued task at once (with its ``canceled`` event), or flag a running one.

        ``actor`` is who asks: the ``canceled`` event of a queued task names it, and a running
        task's flag keeps it for ``cancel_requester`` (the first asker wins). Return the task
        afterwards. Raise TaskFinished for a terminal task. Twice is harmless."""
        raise NotImplementedError

    def cancel_requester(self, task_id: int) -> str | None:
        """Who asked to cancel the running task (from any process); None when nobody did or
        the asker was not named."""
        raise NotImplementedError

    def is_cancel_requested(self, task_id: int) -> bool:
        """True once request_cancel flagged the running task (from any process)."""
        raise NotImplementedError

    def events_after(self, task_id: int, after_id: int, limit: int = 100) -> list[Event]:
        """Return up to ``limit`` events of the task with ``id > after_id``, oldest first."""
        raise NotImplementedError

    def wait_events(self, task_id: int, after_id: int, timeout: float,
                    limit: int = 100) -> list[Event]:
        """Like events_after, but wait up to ``timeout`` seconds for one to arrive.

        Returns as soon as an event is there; an empty list means the timeout passed."""
        raise NotImplementedError

    def purge_finished(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` terminal tasks that ended before ``before``, with their
        events, oldest first; return how many. Never touches a queued or running task."""
        raise NotImplementedError

    def group_locks(self) -> GroupLocks:
        """The locks of the concurrency groups of this store's tasks (:mod:`app.store.groups`):
        one object per store, shared by every process that shares the store."""
        raise NotImplementedError

    def worker_registry(self) -> WorkerRegistry:
        """The heartbeat rows of the processes sharing this store (:mod:`app.store.workers`):
        one object per store."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections and pollers, and wake every ``wait_events`` under way: from
        now on it returns at once (with what is there, maybe nothing)."""
