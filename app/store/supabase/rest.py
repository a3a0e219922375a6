"""The Supabase store's HTTP side: one client per process, errors mapped, rows made tasks.

The official client sends PostgREST requests; here it gets an ``httpx.Client`` with explicit
timeouts and no hidden retries (a GET against a dead server would otherwise sleep 1+2+4 s
before failing). Every failure, whether ``httpx`` raised it or PostgREST answered an error,
becomes :class:`SupabaseError`, a :class:`StoreUnavailable` that knows whether the request
might still have been applied (``ambiguous``), which decides if a write may simply be retried.
"""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import datetime
from typing import Any

import httpx
from postgrest.exceptions import APIError

from supabase import ClientOptions, create_client

from ..base import TERMINAL_KINDS, Event, StoreUnavailable, Task, TaskStatus

TASKS = "va_tasks"
EVENTS = "va_task_events"
TASK_COLUMNS = ("id", "created_at", "title", "status")
EVENT_COLUMNS = ("id", "created_at", "task_id", "kind", "data_json")
CANCELS = "va_task_cancels"  # who asked to cancel a running task (the first asker)
CANCEL_COLUMNS = ("task_id", "requested_by", "requested_at")
LOCKS = "va_concurrency_locks"  # who holds each concurrency group (app.store.supabase.groups)
LOCK_COLUMNS = ("group_name", "task_id", "acquired_at")
AUDIT = "va_audit"  # the audit trail (app.audit.supabase writes it; the start-up check reads it)
AUDIT_COLUMNS = ("id", "created_at", "actor", "action", "outcome", "task_id", "client",
                 "request_id", "detail")
IDEMPOTENCY = "va_idempotency_keys"  # Idempotency-Key entries (app.store.supabase.idempotency)
IDEMPOTENCY_COLUMNS = ("actor", "key", "fingerprint", "task_id", "created_at")
NOTIFICATIONS = "va_notifications"  # each notification's deliveries (app.notify.supabase)
NOTIFICATION_COLUMNS = ("id", "task_id", "url", "event", "format", "attempts", "status",
                        "last_status", "last_error", "next_attempt_at", "delivered_at",
                        "created_at")
WORKERS = "va_workers"  # one heartbeat row per server process (app.store.supabase.workers)
WORKER_COLUMNS = ("id", "host", "pid", "pools", "runners", "recipes", "workers", "running",
                  "started_at", "last_seen", "stopped_at")
UNIQUE_VIOLATION = "23505"
# A PostgREST or PostgreSQL error code: the database answered, so nothing was applied.
_DEFINITE_CODE = re.compile(r"^(PGRST\d+|[0-9A-Z]{5})$")
# httpx errors raised before the request left: it certainly was not applied.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_BROKEN = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
MAX_CONNECTIONS = 50
# The pool checks every idle kept-alive connection for readability as it hands out and takes
# back each one, and under gevent each check is a trip through the event loop (46
# microseconds, a plain poll 1.8): 50 greenlets sharing this client spent 2.1 times the CPU
# per request with every connection kept as with 10 (bench/keepalive.py). Busier moments
# open more connections and close them after use (docs/supabase.md).
MAX_IDLE_CONNECTIONS = 10


def _is_read(builder) -> bool:
    request = getattr(builder, "request", None)
    return getattr(request, "http_method", None) == "GET"


class SupabaseError(StoreUnavailable):
    """Supabase could not be reached or answered an error.

    ``code`` is PostgREST's error code when it answered; ``ambiguous`` is True when a write
    may have been applied although no answer came back (a read timeout, a reset connection)."""

    def __init__(self, message: str, code: str | None = None, ambiguous: bool = False):
        super().__init__(message)
        self.code = code
        self.ambiguous = ambiguous
        self.broken_connection = False  # reset or closed by the other end, not a timeout


class SupabaseRest:
    """The process's one Supabase client, created on first use (so after gunicorn forks)."""

    def __init__(self, url: str, key: str, timeout: float,
                 max_idle_connections: int | None = MAX_IDLE_CONNECTIONS):
        self.url = url.rstrip("/")
        self._key = key
        self.timeout = timeout
        self.max_idle_connections = max_idle_connections  # None: keep every one
        self._lock = threading.Lock()
        self._client = None
        self._http: httpx.Client | None = None
        self._pid: int | None = None

    def table(self, name: str):
        """A request builder for ``name``; finish it with :meth:`run`."""
        return self._supabase().table(name)

    def run_counted(self, builder) -> tuple[Any, int]:
        """Like :meth:`run` for a read made with ``count="exact"``: its rows, and how many
        rows match in all (PostgREST's ``Content-Range``)."""
        response = self._answer(builder)
        return response.data, int(response.count or 0)

    def run(self, builder) -> Any:
        """Execute a built request and return its data, or raise SupabaseError.

        A read whose connection broke is sent once more at once: a pooled keep-alive
        connection to a Supabase that restarted fails that way, and a read is safe to repeat.
        Nothing sleeps, and writes are never repeated here (see the writer's outbox)."""
        return self._answer(builder).data

    def _answer(self, builder):
        try:
            return self._execute(builder)
        except SupabaseError as error:
            if not (error.broken_connection and _is_read(builder)):
                raise
        return self._execute(builder)

    def _execute(self, builder):
        try:
            return builder.execute()
        except APIError as error:
            code = str(error.code) if error.code is not None else None
            definite = bool(code and _DEFINITE_CODE.match(code))
            raise SupabaseError(f"Supabase answered an error: {_describe(error)}", code,
                                ambiguous=not definite) from None
        except _NOT_SENT as error:
            raise SupabaseError(f"cannot reach Supabase at {self.url}: "
                                f"{type(error).__name__}: {error}") from None
        except httpx.HTTPError as error:
            failure = SupabaseError(f"no answer from Supabase at {self.url}: "
                                    f"{type(error).__name__}: {error}", ambiguous=True)
            failure.broken_connection = isinstance(error, _BROKEN)
            raise failure from None
        except ValueError as error:  # a body that is not JSON (a proxy's error page)
            raise SupabaseError(f"Supabase answered something that is not JSON: {error}",
                                ambiguous=True) from None

    def _supabase(self):
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                # HTTP/1.1: shared HTTP/2 sync clients have broken under concurrency.
                limits = httpx.Limits(max_connections=MAX_CONNECTIONS,
                                      max_keepalive_connections=self.max_idle_connections)
                self._http = httpx.Client(timeout=httpx.Timeout(self.timeout), http2=False,
                                          limits=limits)
                options = ClientOptions(httpx_client=self._http, postgrest_client_retry=False,
                                        auto_refresh_token=False, persist_session=False)
                self._client = create_client(self.url, self._key, options=options)
                self._pid = os.getpid()
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._http is not None and self._pid == os.getpid():
                self._http.close()
            self._client = self._http = None


def _describe(error: APIError) -> str:
    parts = [error.code or "", error.message or "", f"({error.details})" if error.details else "",
             f"hint: {error.hint}" if error.hint else ""]
    return " ".join(p for p in parts if p)[:500]


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def event_from_row(row: dict[str, Any]) -> Event:
    data = row.get("data_json")
    if isinstance(data, str):  # a text column in an older deployment
        data = json.loads(data)
    return Event(id=int(row["id"]), task_id=int(row["task_id"]), kind=row["kind"],
                 created_at=parse_time(row["created_at"]), data=data or {})


def task_from_row(row: dict[str, Any], events: list[Event]) -> Task:
    """The task as the API shows it, from its row and its lifecycle events.

    A stored terminal event decides how it ended (it is written before the row's status),
    and ``canceling`` is a flag on a queued or running task, not a status of its own."""
    terminal = next((e.kind for e in events if e.kind in TERMINAL_KINDS), None)
    started = any(e.kind == "status" for e in events)
    stored = row["status"]
    if terminal is not None:
        status = TaskStatus(terminal)
    elif stored == "canceling":
        status = TaskStatus.RUNNING if started else TaskStatus.QUEUED
    else:
        status = TaskStatus(stored)
    return Task.from_events(row["id"], row["title"], status, parse_time(row["created_at"]),
                            events, cancel_requested=stored == "canceling")
