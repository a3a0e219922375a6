"""One poller per task per process, shared by every stream of that task in the process.

A stream waiting for events registers with its task's poller; the poller alone asks
Supabase for ``id > cursor`` (a bounded page, then the next one at once if it was full)
every poll interval, keeps what it got in memory and wakes its waiters. So the requests
sent for a task do not grow with the number of clients watching it. A poller stops polling
after the terminal event, and goes away when nobody has waited on it for ``linger`` seconds.

When this process has written an event of the task (its runner runs here), the store nudges
the task's poller: it polls at once instead of at the end of the interval (but not sooner
than half an interval after its previous poll, so at most two polls per interval however
fast the task writes), and the interval starts again from there. Streams in the writer's own
process so see an event one request after it is stored; other processes see it at their
next poll.

Pollers are ``threading.Thread``s: greenlets under gunicorn's gevent worker, threads without.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable

from ..base import TERMINAL_KINDS, Event, StoreUnavailable

log = logging.getLogger(__name__)

PAGE = 100
KEEP = 2000  # events a poller keeps; a waiter further behind reads Supabase itself
NUDGED_GAP = 0.5  # of the interval: the least time between a poll and a nudged one

Fetch = Callable[[int, int, int], list[Event]]


class TaskPoller:
    """Polls one task's events and serves them to the process's waiters."""

    def __init__(self, hub: PollerHub, task_id: int, base_id: int):
        self.hub = hub
        self.task_id = task_id
        self.base_id = base_id  # events after it are kept (from the first waiter on)
        self.cursor = base_id
        self.events: list[Event] = []
        self.ids: list[int] = []
        self.ended = False
        self.dead = False  # stopped polling and left the hub: waiters go to a new poller
        self.error: StoreUnavailable | None = None
        self.polls = 0
        self.waiters = 0
        self.idle_since = hub.clock()
        self.lock = threading.Lock()
        # Set, then replaced, at each change: every waiter wakes at once (as in the memory
        # store) instead of one by one, each retaking a Condition's lock.
        self.changed = threading.Event()
        self.nudged = threading.Event()  # set by nudge() and by the hub's close()
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"ops-poll-{task_id}")

    # -- waiters --------------------------------------------------------------------------

    def wait(self, after_id: int, timeout: float, limit: int) -> list[Event] | None:
        """Events after ``after_id``, [] at the timeout, None if this poller has stopped."""
        deadline = self.hub.clock() + timeout
        with self.lock:
            if self.dead:
                return None
            self.waiters += 1
            polls_before = self.polls
        try:
            while True:
                with self.lock:
                    start = bisect.bisect_right(self.ids, after_id)
                    if start < len(self.ids):
                        return self.events[start:start + limit]
                    if self.ended or self.hub.closed.is_set():
                        return []
                    if self.error is not None and self.polls > polls_before:
                        raise StoreUnavailable(str(self.error))
                    changed = self.changed
                remaining = deadline - self.hub.clock()
                if remaining <= 0:
                    return []
                changed.wait(remaining)
        finally:
            with self.lock:
                self.waiters -= 1
                if self.waiters == 0:
                    self.idle_since = self.hub.clock()

    # -- polling --------------------------------------------------------------------------

    def _run(self) -> None:
        hub = self.hub
        while not hub.closed.is_set():
            started = hub.clock()
            self.nudged.clear()  # a nudge from now on is for a write this poll may miss
            if not self.ended and self._poll_once():
                continue  # the page was full: fetch the next one at once
            if hub.retire_if_idle(self):
                return
            # One poll per interval, however long the poll took (that time is latency too),
            # or sooner when nudged, but not sooner than the nudged gap.
            if self.nudged.wait(max(0.0, hub.interval - (hub.clock() - started))):
                hub.closed.wait(max(0.0, hub.interval * NUDGED_GAP - (hub.clock() - started)))
        hub.retire_if_idle(self, force=True)

    def _poll_once(self) -> bool:
        try:
            page = self.hub.fetch(self.task_id, self.cursor, PAGE)
        except StoreUnavailable as error:
            with self.lock:
                self.error = error
                self.polls += 1
                self._notify()
            return False
        except Exception:  # keep serving: the next poll may work
            if not self.hub.closed.is_set():  # else the store closed its client mid-poll
                log.exception("task %s: poll failed", self.task_id)
            return False
        with self.lock:
            was_ended = self.ended
            self.error = None
            self.polls += 1
            for event in page:
                if event.id > self.cursor:
                    self.events.append(event)
                    self.ids.append(event.id)
                    self.cursor = event.id
                    self.ended = self.ended or event.kind in TERMINAL_KINDS
            if len(self.events) > KEEP:
                dropped = len(self.events) - KEEP // 2
                self.base_id = self.ids[dropped - 1]
                del self.events[:dropped], self.ids[:dropped]
            self._notify()
        if self.ended and not was_ended:
            self.hub.on_ended(self.task_id)
        return len(page) == PAGE and not self.ended

    def _notify(self) -> None:
        """Wake every waiter (the caller holds the lock)."""
        self.changed.set()
        self.changed = threading.Event()


class PollerHub:
    """The process's pollers, by task."""

    def __init__(self, fetch: Fetch, interval: float, linger: float,
                 on_ended: Callable[[int], None] = lambda task_id: None,
                 clock: Callable[[], float] = time.monotonic):
        self.fetch = fetch
        self.on_ended = on_ended  # told when a poller sees its task's terminal event
        self.interval = interval
        self.linger = linger
        self.clock = clock
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._pollers: dict[int, TaskPoller] = {}

    def wait(self, task_id: int, after_id: int, timeout: float, limit: int) -> list[Event]:
        """Events of the task after ``after_id`` as soon as there are some, else [] at the
        timeout; raise StoreUnavailable when a poll made while waiting failed."""
        while True:
            poller = self._poller(task_id, after_id)
            if after_id < poller.base_id:  # behind what the poller keeps: read the gap
                events = self.fetch(task_id, after_id, limit)
                if events:
                    return events
            events = poller.wait(after_id, timeout, limit)
            if events is not None:
                return events

    def _poller(self, task_id: int, after_id: int) -> TaskPoller:
        with self._lock:
            if self.closed.is_set():
                raise StoreUnavailable("the store is closed")
            poller = self._pollers.get(task_id)
            if poller is None:
                poller = self._pollers[task_id] = TaskPoller(self, task_id, after_id)
                poller.thread.start()
            return poller

    def retire_if_idle(self, poller: TaskPoller, force: bool = False) -> bool:
        """Remove the poller when nobody waited on it for ``linger`` seconds (or ``force``)."""
        with self._lock, poller.lock:
            idle = poller.waiters == 0 and self.clock() - poller.idle_since >= self.linger
            if not (idle or force):
                return False
            poller.dead = True
            if self._pollers.get(poller.task_id) is poller:
                del self._pollers[poller.task_id]
            poller._notify()
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._pollers)

    def nudge(self, task_id: int) -> None:
        """This process stored an event of the task: its poller (if any) polls soon."""
        with self._lock:
            poller = self._pollers.get(task_id)
        if poller is not None:
            poller.nudged.set()

    def close(self) -> None:
        self.closed.set()
        with self._lock:
            pollers = list(self._pollers.values())
        for poller in pollers:
            poller.nudged.set()
            with poller.lock:
                poller._notify()
