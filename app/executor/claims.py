"""The claimer: how this process takes work from a queue that every process shares.

With a store whose queue is shared (``shared_queue``: Supabase) a queued task belongs to no
process. One thread per process (not per worker) looks at the oldest queued tasks once per
poll interval, or at once when a worker of this process becomes free, and offers the ones
this process can run (its runners, recipes and pools: :mod:`.fleet`) to its free workers,
at most one a free worker. The worker then claims the task (``mark_running``: exactly one
process wins it) and runs it; a claim lost to another process only frees the worker again.
A task of a concurrency group is claimed only once its group's lock is taken for it, which
the group's oldest queued task gets first, whoever asks (:mod:`app.store.groups`). With more
runnable tasks than free workers, a process picks at random among the oldest few (four per
free worker), so that processes looking at the same moment seldom race for the same task.

The process that accepted a task offers it to one of its own free workers at once, so with
one process nothing waits for a poll. Each round also counts the shared queue, which is
what the queue bound (``OPS_QUEUE_SIZE``, 429) is checked against.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from ..store import Task, TaskStore
from .fleet import Fleet

log = logging.getLogger(__name__)

PAGES = 5  # pages of queued tasks looked at per round when the first hold none to run here
PAGE = 100
# The first page holds a few tasks per free worker, not a full page: a round comes each time
# a worker is free, and most rounds find what they need among the oldest.
FIRST_PAGE_PER_WORKER = 4


class Claimer:
    """Offers the shared queue's tasks this process can run to its free workers."""

    def __init__(self, store: TaskStore, fleet: Fleet, *, poll_seconds: float,
                 offer: Callable[[int, str | None], bool], free: Callable[[], int],
                 closing: threading.Event, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.fleet = fleet
        self.poll_seconds = poll_seconds
        self._offer = offer  # hand a task (and its group) to a free worker; False: none free
        self._free = free
        self._closing = closing
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._random = random.Random()
        self._thread: threading.Thread | None = None
        self._queued = 0  # the shared queue's length at the last round, plus creates since
        # group -> (the task holding it, when a worker of this process found it busy)
        self._busy: dict[str, tuple[int, float]] = {}

    @property
    def queued(self) -> int:
        """How many tasks wait in the shared queue, as this process last counted them."""
        with self._lock:
            return self._queued

    def created(self) -> None:
        """This process put a task in the shared queue (counted until the next round)."""
        with self._lock:
            self._queued += 1

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="ops-claimer", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the queue now rather than at the next poll (a worker became free)."""
        self._wake.set()

    def stop(self, timeout: float) -> None:
        """Claim nothing more; mark this process's heartbeat row stopped."""
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self.fleet.withdraw()

    def group_busy(self, group: str, holder: int) -> None:
        """A worker found ``group`` held by ``holder``: its tasks are not offered again
        before the next poll, unless this process gives the group back meanwhile."""
        with self._lock:
            self._busy[group] = (holder, self._clock())

    def group_free(self, group: str) -> None:
        """A task of this process gave ``group`` back."""
        with self._lock:
            self._busy.pop(group, None)
        self.wake()

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._closing.is_set():
            self._wake.clear()
            try:
                self.fleet.beat_if_due()
                self.claim_round()
            except Exception as error:  # the store is away: the next round asks again
                log.warning("could not look at the shared queue: %s", error)
            self._wake.wait(self.poll_seconds)

    def claim_round(self) -> int:
        """Count the shared queue and offer its oldest tasks this process can run to its
        free workers; return how many were offered."""
        free = self._free()
        first_page = min(PAGE, FIRST_PAGE_PER_WORKER * free)
        tasks, total = self.store.claimable(first_page)
        with self._lock:
            self._queued = total
        offered, pages = 0, 1
        while free > offered and tasks:
            for task in self._spread([t for t in tasks if self._runnable(t)], free - offered):
                if free <= offered:
                    break
                if self._offer(task.id, self._group(task)):
                    offered += 1
            if len(tasks) < (first_page if pages == 1 else PAGE) or pages >= PAGES \
                    or free <= offered:
                break
            tasks, _ = self.store.claimable(PAGE, after_id=tasks[-1].id)
            pages += 1
        return offered

    def _spread(self, runnable: list[Task], wanted: int) -> list[Task]:
        """The tasks to offer, oldest first: with more than it can take, a random choice
        among them (they are the few oldest), so that processes looking at once mostly
        try different tasks instead of racing for the same ones. A group's tasks are never
        skipped for a younger one of the same group: the group's lock orders them anyway."""
        if len(runnable) <= wanted:
            return runnable
        return sorted(self._random.sample(runnable, wanted), key=lambda task: task.id)

    def _runnable(self, task: Task) -> bool:
        if self.fleet.lacks(task) is not None:
            return False
        group = self._group(task)
        if group is None:
            return True
        with self._lock:
            busy = self._busy.get(group)
            if busy is not None and self._clock() - busy[1] >= self.poll_seconds:
                del self._busy[group]
                busy = None
        return busy is None

    @staticmethod
    def _group(task: Task) -> str | None:
        return task.extra.get("concurrency_group")
