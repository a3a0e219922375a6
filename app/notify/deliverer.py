"""Delivering notifications: a queue of what to send, a few sender threads, retries.

:class:`Notifier` is a :class:`~app.store.TaskObserver`: the store tells it of each start and
ending this process writes, and it only queues them (the task's worker never waits for a
receiver). Sender threads (greenlets under gunicorn's gevent worker), started on the first
notice in each process (so after gunicorn's fork), build the summary from the store, add one
:class:`~.records.Delivery` per URL, and post it, signed:

- an attempt waits at most ``timeout`` seconds (10) for the answer;
- a 2xx answer delivers it; a connection error, a timeout, a 5xx, 408 or 429 is tried again
  after ``backoff_base`` seconds, doubled at each failure up to ``backoff_cap`` (5 minutes),
  for up to ``give_up_after`` seconds (an hour) after the first attempt;
- any other answer (3xx, 4xx) stops at once: the receiver refused these very bytes (a bad
  signature, a gone URL) and would refuse them again.

On a stop (:meth:`Notifier.close`) what is due within a short grace is still tried; what is
left is logged, and its record stays ``pending``: no other process takes it up.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from ..background import PerProcessThreads
from ..recipes import NotifyTarget, Recipe, RecipeBook, RecipeError
from ..store import StoreUnavailable, Task, TaskNotFound, TaskObserver, TaskStatus, TaskStore
from . import payload
from .payload import ENDED, SIGNATURE_HEADER, STARTED
from .records import DELIVERED, FAILED, Delivery, DeliveryLog

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

SENDERS = 4
# Notices and attempts a process keeps waiting at most (a receiver down for an hour while
# tasks end by the thousand): past it new notices are dropped, each with a log line.
MAX_WAITING = 10_000
ATTEMPT_TIMEOUT = 10.0
BACKOFF_CAP = 300.0
GIVE_UP_AFTER = 3600.0
RETRIED_4XX = frozenset({408, 429})
MAX_ERROR = 300
USER_AGENT = "ops-orchestrator-notify"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclasses.dataclass
class _Notice:
    """A task's start or ending, its deliveries not made yet."""

    event: str
    task_id: int
    status: TaskStatus
    data: dict[str, Any]
    finished_at: datetime | None
    first: float  # when it was heard of (the notifier's clock)
    task: Task | None = None  # a start's task as it started (the store may be past that)
    tries: int = 0  # reads of the store that failed


@dataclasses.dataclass
class _Attempt:
    """One delivery to one URL, tried until it is delivered or given up."""

    record: Delivery
    url: str  # the full URL (the record keeps the one viewers see)
    body: bytes
    delivery_id: str  # X-Ops-Delivery: the same on every attempt
    first: float


class Notifier(TaskObserver):
    """Queues a notice per start (when ``on_start``) and ending, and delivers them."""

    def __init__(self, store: TaskStore, records: DeliveryLog, *,
                 targets: tuple[NotifyTarget, ...] = (), recipes: RecipeBook | None = None,
                 secret: str | None = None, public_url: str | None = None,
                 on_start: bool = False, secrets: tuple[str, ...] = (),
                 backoff_base: float = 1.0, backoff_cap: float = BACKOFF_CAP,
                 give_up_after: float = GIVE_UP_AFTER, timeout: float = ATTEMPT_TIMEOUT,
                 senders: int = SENDERS, max_waiting: int = MAX_WAITING,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = utcnow):
        self.store = store
        self.records = records
        self.targets = targets
        self.recipes = recipes
        self.secret = secret
        self.public_url = public_url
        self.on_start = on_start
        self._secrets = secrets
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.give_up_after = give_up_after
        self.timeout = timeout
        self.senders = senders
        self.max_waiting = max_waiting
        self._clock = clock
        self._now = now
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Notice | _Attempt]] = []
        self._seq = itertools.count()
        self._busy = 0  # items being processed by a sender
        self._stopped = False
        self._senders = PerProcessThreads(self._run, "ops-notify", count=self.senders)
        self._http: httpx.Client | None = None
        self._http_lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """True when some URL is configured (the settings', or a recipe's)."""
        recipes = self.recipes.recipes if self.recipes else ()
        return bool(self.targets) or any(r.notify for r in recipes)

    # -- what the store tells -------------------------------------------------------------

    def task_started(self, task: Task) -> None:
        if self.on_start:
            self._push(_Notice(STARTED, task.id, task.status, {}, None, self._clock(), task))

    def task_ended(self, task_id, status, data, finished_at) -> None:
        self._push(_Notice(ENDED, task_id, TaskStatus(status), dict(data), finished_at,
                           self._clock()))

    @property
    def waiting(self) -> int:
        """Notices and attempts queued or under way."""
        with self._cond:
            return len(self._heap) + self._busy

    # -- the queue ------------------------------------------------------------------------

    def _push(self, item: _Notice | _Attempt, due: float | None = None) -> None:
        with self._cond:
            if self._stopped:
                _log_left(item)
                return
            if isinstance(item, _Notice) and not item.tries \
                    and len(self._heap) + self._busy >= self.max_waiting:
                log.error("task %s: %s not sent: %d notifications already wait (a receiver "
                          "is failing?)", item.task_id, item.event, self.max_waiting)
                return
            heapq.heappush(self._heap, (self._clock() if due is None else due,
                                        next(self._seq), item))
            self._cond.notify()
        self._start()

    def _start(self) -> None:
        """Start the senders on the first notice in this process (after gunicorn's fork)."""
        self._senders.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    wait = None
                    if self._heap:
                        wait = self._heap[0][0] - self._clock()
                        if wait <= 0:
                            _, _, item = heapq.heappop(self._heap)
                            self._busy += 1
                            break
                    self._cond.wait(wait)
            try:
                if isinstance(item, _Notice):
                    self._build(item)
                else:
                    self._attempt(item)
            except Exception:  # a sender must outlive any surprise
                log.exception("notifications: a delivery failed unexpectedly")
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _delay(self, failures: int) -> float:
        return min(self.backoff_base * 2 ** (failures - 1), self.backoff_cap)

    # -- building -------------------------------------------------------------------------

    def _build(self, notice: _Notice) -> None:
        """The summary, then one delivery per URL, each queued for its first attempt."""
        try:
            task = notice.task or self.store.get_task(notice.task_id)
        except TaskNotFound:  # evicted or purged already: what the ending said
            task = payload.minimal_task(notice.task_id, notice.status, notice.data,
                                        notice.finished_at)
        except StoreUnavailable as error:
            notice.tries += 1
            delay = self._delay(notice.tries)
            if self._clock() - notice.first + delay > self.give_up_after:
                log.error("task %s: %s not sent: the store did not answer: %s",
                          notice.task_id, notice.event, error)
            else:
                self._push(notice, self._clock() + delay)
            return
        recipe = self._recipe(task)
        targets = self.targets + (recipe.notify if recipe else ())
        if not targets:
            return
        tail: list[str] = []
        if notice.event == ENDED:
            try:
                tail = payload.log_tail(self.store, task.id)
            except StoreUnavailable as error:
                log.warning("task %s: its notification goes without its output: %s",
                            task.id, error)
        redact = payload.redactor_for(self._secrets,
                                      tuple(v for _, v in recipe.env) if recipe else ())
        body = payload.summary(notice.event, task, tail, self.public_url, redact)
        now = self._now()
        for target in targets:
            record = Delivery(task_id=task.id, url=payload.shown_url(target.url, target.format),
                              event=notice.event, created_at=now, format=target.format,
                              next_attempt_at=now)
            self._save(self.records.add, record)
            self._push(_Attempt(record, target.url, payload.encode(body, target.format),
                                str(uuid.uuid4()), self._clock()))

    def _recipe(self, task: Task) -> Recipe | None:
        name = task.extra.get("recipe")
        if self.recipes is None or name is None:
            return None
        try:
            return self.recipes.get(name)
        except RecipeError:  # renamed since the task was made
            return None

    # -- sending --------------------------------------------------------------------------

    def _attempt(self, attempt: _Attempt) -> None:
        record = attempt.record
        record.attempts += 1
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   SIGNATURE_HEADER: payload.signature(self.secret or "", attempt.body),
                   "X-Ops-Delivery": attempt.delivery_id, "X-Ops-Event": record.event}
        retry = True
        try:
            response = self._client().post(attempt.url, content=attempt.body, headers=headers)
        except Exception as error:  # httpx's errors, and whatever else stops a request
            record.last_status = None
            record.last_error = (f"{type(error).__name__}: {error}"
                                 .replace(attempt.url, record.url)[:MAX_ERROR])
        else:
            code = record.last_status = response.status_code
            record.last_error = None if 200 <= code < 300 else f"HTTP {code}"
            retry = code >= 500 or code in RETRIED_4XX
        now = self._now()
        if record.last_error is None:
            record.status, record.delivered_at, record.next_attempt_at = DELIVERED, now, None
            self._save(self.records.update, record)
            log.info("task %s: %s delivered to %s (attempt %d)", record.task_id, record.event,
                     record.url, record.attempts)
            return
        delay = self._delay(record.attempts)
        if retry and self._clock() - attempt.first + delay <= self.give_up_after:
            record.next_attempt_at = now + timedelta(seconds=delay)
            self._save(self.records.update, record)  # before it can be taken again
            log.info("task %s: %s to %s failed (attempt %d: %s); next try in %.3gs",
                     record.task_id, record.event, record.url, record.attempts,
                     record.last_error, delay)
            self._push(attempt, self._clock() + delay)
            return
        record.status, record.next_attempt_at = FAILED, None
        self._save(self.records.update, record)
        log.warning("task %s: %s to %s given up after %d attempts: %s", record.task_id,
                    record.event, record.url, record.attempts, record.last_error)

    def _client(self) -> httpx.Client:
        import httpx  # on first use: a server without notifications never loads it

        with self._http_lock:
            if self._http is None:
                self._http = httpx.Client(timeout=httpx.Timeout(self.timeout),
                                          follow_redirects=False)
            return self._http

    def _save(self, write, record: Delivery) -> None:
        try:
            write(record)
        except Exception as error:  # the record lags; the delivery goes on
            log.warning("task %s: the record of a notification was not saved: %s",
                        record.task_id, error)

    # -- stopping -------------------------------------------------------------------------

    def close(self, grace: float) -> None:
        """Try what is due within ``grace`` seconds, then stop; log what is left."""
        deadline = self._clock() + grace
        with self._cond:
            while (remaining := deadline - self._clock()) > 0 and (
                    self._busy or (self._heap and self._heap[0][0] <= deadline)):
                self._cond.wait(remaining)
            self._stopped = True
            left = [item for _, _, item in sorted(self._heap)]
            self._heap.clear()
            busy = self._busy
            self._cond.notify_all()
        for item in left:
            _log_left(item)
        if busy:
            log.warning("notifications: %d deliveries still under way at the stop", busy)
        elif self._http is not None:
            self._http.close()
        self.records.close()


def _log_left(item: _Notice | _Attempt) -> None:
    if isinstance(item, _Notice):
        log.warning("task %s: %s not sent: the server stopped first", item.task_id, item.event)
        return
    record = item.record
    log.warning("task %s: %s to %s not delivered before the stop (%d attempts, last: %s); "
                "it stays pending and no other process retries it", record.task_id,
                record.event, record.url, record.attempts, record.last_error or "none yet")
