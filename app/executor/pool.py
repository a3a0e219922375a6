"""The executor: a bounded queue and a fixed pool of workers that run tasks with their runner.

Workers are ``threading.Thread``s. Under gunicorn's gevent worker ``threading`` is patched, so
they are greenlets on the worker's one OS thread: right for I/O-bound runners (sleeps, pipes,
HTTP), and the reason a runner must never spin the CPU for long. Unpatched (tests, ``flask
run``) they are ordinary threads. Threads start on the first submit, so a pool is never
created before gunicorn forks.

A task of a concurrency group waits for its group without holding a worker
(:mod:`.groups`).

With a store whose queue is shared by processes (Supabase), a created task goes to that
queue, not to this process's: the claimer (:mod:`.claims`) offers queued tasks to free
workers, and a worker claims a task before running it. The queue bound then counts the
shared queue, a task no process ever said it could run is refused (:class:`Unserved`), and a
stop leaves queued tasks queued for the other processes.

``Executor(..., inline=True)`` starts no thread at all (as rq's ``is_async=False`` and
``work(burst=True)``): ``submit`` only queues, and ``run_pending()`` runs the queued tasks one
after the other in the calling thread until the queue is empty. Tests use it to run tasks
without threads or polling. Nothing watches an inline task while it runs: task timeouts and
cancels from other processes need the workers.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..store import ClaimedElsewhere, Task, TaskFinished, TaskStatus, TaskStore
from ..store.groups import GroupLocks
from .claims import Claimer
from .fleet import Capabilities, Fleet
from .groups import GroupGate
from .runner import RunContext, Runner, TaskFailed, TaskStopped

log = logging.getLogger(__name__)


def cancel_reason(actor: str | None) -> str:
    """The ``reason`` of a task canceled while it ran."""
    return f"canceled by {actor}" if actor else "canceled by an admin"


def canceled_by(actor: str | None) -> dict[str, str]:
    return {} if actor is None else {"canceled_by": actor}


class QueueFull(Exception):
    """Every worker is busy and the queue holds its maximum."""


class ShuttingDown(Exception):
    """The executor is stopping and takes no new task."""


class Unserved(Exception):
    """No process sharing the store has ever said it can run such a task (503)."""


class Executor:
    """Runs tasks from a bounded queue on ``workers`` workers."""

    def __init__(self, store: TaskStore, runners: Mapping[str, Runner], *, workers: int,
                 queue_size: int, task_timeout: float | None = None,
                 watch_interval: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 on_counts: Callable[[int, int], None] | None = None, inline: bool = False,
                 locks: GroupLocks | None = None, capabilities: Capabilities | None = None,
                 heartbeat_seconds: float = 10.0, live_seconds: float = 60.0):
        self.store = store
        self.runners = dict(runners)
        self.workers = workers
        self.queue_size = queue_size
        self.capacity = workers + queue_size
        self.task_timeout = task_timeout
        self._watch_interval = watch_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._pending = 0  # queued + running; admission control keeps it <= capacity
        self._running: dict[int, tuple[RunContext, float]] = {}
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._on_counts = on_counts  # told (queued, running) at each change, under the lock
        self.inline = inline
        self.groups = GroupGate(store, locks if locks is not None else store.group_locks(),
                                enqueue=self._queue.put, cancel=self.cancel,
                                closing=self._closing)
        self.locks = self.groups.locks
        self.fleet = Fleet(store, capabilities or Capabilities(tuple(self.runners)),
                           workers=workers, heartbeat_seconds=heartbeat_seconds,
                           live_seconds=live_seconds, running=self._running_count)
        self.shared = store.shared_queue
        # Shared-queue tasks offered to a worker (with their group), until it is done with
        # them: a task is never offered twice at once.
        self._offered: dict[int, str | None] = {}
        self.claimer = (Claimer(store, self.fleet, poll_seconds=watch_interval,
                                offer=self._offer, free=self._free, closing=self._closing)
                        if self.shared else None)

    # -- submitting -----------------------------------------------------------------------

    def submit(self, title: str, body: str | None, runner: str,
               extra: dict[str, Any] | None = None, created_by: str | None = None,
               concurrency_policy: str = "queue") -> Task:
        """Create a task and queue it; raise QueueFull, ShuttingDown or GroupBusy without
        creating it.

        ``created_by`` names who asked for it (kept in its ``created`` event). A task whose
        ``extra`` names a ``concurrency_group`` waits for its group, as ``concurrency_policy``
        says (see the module docstring)."""
        if runner not in self.runners:
            raise KeyError(runner)
        refusal = self.fleet.refusal(runner, extra or {})
        if refusal is not None:
            raise Unserved(refusal)
        if self.shared:
            return self._submit_shared(title, body, runner, extra, created_by,
                                       concurrency_policy)
        with self._lock:
            if self._closing.is_set():
                raise ShuttingDown("the server is shutting down")
            if self._pending >= self.capacity:
                raise QueueFull(f"the queue is full ({self.capacity - self.workers} waiting)")
            self._pending += 1
            self._counts_changed()
            self._start_threads()
        group = (extra or {}).get("concurrency_group")
        try:
            if group is not None and concurrency_policy == "reject":
                self.groups.refuse_if_busy(group)
            task = self.store.create_task(title, body, runner, extra, created_by)
        except BaseException:
            self._release()
            raise
        if group is None:
            self._queue.put(task.id)
            return task
        return self.groups.enter(task, group, concurrency_policy, created_by)

    def _submit_shared(self, title: str, body: str | None, runner: str,
                       extra: dict[str, Any] | None, created_by: str | None,
                       concurrency_policy: str) -> Task:
        """Create a task in the shared queue and offer it to a free worker of this process."""
        assert self.claimer is not None
        with self._lock:
            if self._closing.is_set():
                raise ShuttingDown("the server is shutting down")
            self._start_threads()
        if self.claimer.queued >= self.queue_size:
            raise QueueFull(f"the queue is full ({self.claimer.queued} waiting)")
        group = (extra or {}).get("concurrency_group")
        if group is not None and concurrency_policy == "reject":
            self.groups.refuse_if_busy(group)
        task = self.store.create_task(title, body, runner, extra, created_by)
        self.claimer.created()
        if group is not None and concurrency_policy == "cancel-running":
            self.groups.cancel_holder(group, created_by or f"task {task.id}")
        if self.fleet.lacks(task) is None:  # else it waits for a process that can run it
            self._offer(task.id, group)
        return task

    def _offer(self, task_id: int, group: str | None) -> bool:
        """Give a shared-queue task to a free worker, which claims it; False if none is free."""
        with self._lock:
            if (self._closing.is_set() or self._pending >= self.workers
                    or task_id in self._offered or task_id in self._running):
                return False
            self._pending += 1
            self._offered[task_id] = group
            self._counts_changed()
        self._queue.put(task_id)
        return True

    def _free(self) -> int:
        with self._lock:
            return 0 if self._closing.is_set() else self.workers - self._pending

    def _running_count(self) -> int:
        with self._lock:
            return len(self._running)

    def waiting_for(self, task: Task) -> Task:
        """``task`` with what it waits for, when the shared queue knows (it stays queued)."""
        if self.claimer is None or task.status != TaskStatus.QUEUED or task.waiting_for:
            return task
        reason = self.fleet.unserved(task)
        return task if reason is None else dataclasses.replace(task, waiting_for=reason)

    def start(self) -> None:
        """Start the workers and, with a shared queue, the claimer (a server process at
        start: it takes queued tasks before it is asked for any)."""
        if self.shared:
            self.fleet.beat_if_due()  # advertised before it serves: creates elsewhere see it
            with self._lock:
                self._start_threads()

    def cancel(self, task_id: int, actor: str | None = None) -> Task:
        """Cancel a queued task, or ask a running one to stop at its next checkpoint.

        ``actor`` (who asks) is named in the ``canceled`` event; the first asker wins."""
        task = self.store.request_cancel(task_id, actor)
        with self._lock:
            running = self._running.get(task_id)
        group = self.groups.group_of(task_id)
        if running is not None:
            self._stop_canceled(running[0])
        elif group is not None and task.status.is_terminal:
            # Canceled before it started: off to a worker, which finds it ended, and its
            # group is given back now rather than when a worker gets to it.
            self.groups.unpark(task_id, group, ended=True)
            self.groups.leave(task_id)
        return task

    def _stop_canceled(self, ctx: RunContext) -> None:
        """Stop a task whose cancel was asked for, naming who asked (as the store keeps it)."""
        try:
            actor = self.store.cancel_requester(ctx.task.id)
        except Exception as error:  # the store is away: the cancel still stops it
            log.warning("task %s: could not read who canceled it: %s", ctx.task.id, error)
            actor = None
        ctx.stop(TaskStatus.CANCELED, cancel_reason(actor), **canceled_by(actor))

    def stats(self) -> dict[str, int]:
        with self._lock:
            running = len(self._running)
            queued = self._pending - running
        if self.claimer is not None:
            queued = self.claimer.queued  # the shared queue, as last counted
        return {"workers": self.workers, "running": running, "queued": queued,
                "capacity": self.capacity}

    # -- lifecycle ------------------------------------------------------------------------

    def shutdown(self, grace: float = 10.0) -> None:
        """Stop taking tasks, stop running ones, and fail what did not end within ``grace``."""
        with self._lock:
            self._closing.set()
            running = [ctx for ctx, _ in self._running.values()]
            threads = list(self._threads)
        if self.claimer is not None:
            self.claimer.stop(grace)  # queued tasks stay queued for the other processes
        for ctx in running:
            ctx.stop(TaskStatus.FAILED, "shutdown")
        for _ in threads:
            self._queue.put(None)
        deadline = self._clock() + grace
        for thread in threads:
            thread.join(max(0.0, deadline - self._clock()))
        self._fail_leftovers()

    def _fail_leftovers(self) -> None:
        """Tasks still queued or running after the grace period end ``failed``: shutdown."""
        leftovers = []
        while True:
            try:
                task_id = self._queue.get_nowait()
            except queue.Empty:
                break
            if task_id is not None:
                self._release()  # off the queue, and no worker will take it now
                with self._lock:
                    offered = self._offered.pop(task_id, False) is not False
                if not offered:  # an offered task is not claimed: it stays queued
                    leftovers.append(task_id)
        with self._lock:
            leftovers.extend(self._running)
            parked = self.groups.take_parked()
            leftovers.extend(parked)
            self._pending -= len(parked)  # no worker will take them now
            self._counts_changed()
        for task_id in leftovers:
            self._finish(task_id, TaskStatus.FAILED, {"reason": "shutdown"})
            self.groups.leave(task_id)

    # -- inline mode ----------------------------------------------------------------------

    def run_pending(self) -> int:
        """Run the queued tasks in the calling thread until none is left (``inline=True``);
        return how many were taken from the queue."""
        if not self.inline:
            raise RuntimeError("run_pending() is for an executor made with inline=True")
        taken = 0
        while True:
            try:
                task_id = self._queue.get_nowait()
            except queue.Empty:
                return taken
            taken += 1
            try:
                self._take(task_id)
            finally:
                self._release(task_id)

    # -- workers --------------------------------------------------------------------------

    def _start_threads(self) -> None:
        if self._threads or self.inline:
            return
        for n in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"ops-worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        watcher = threading.Thread(target=self._watch, name="ops-watcher", daemon=True)
        watcher.start()
        if self.claimer is not None:
            self.claimer.start()

    def _work(self) -> None:
        while True:
            task_id = self._queue.get()
            if task_id is None:
                return
            try:
                self._take(task_id)
            except Exception:  # a store failure must not kill the worker
                log.exception("task %s: could not be run", task_id)
            finally:
                self._release(task_id)
                if self.claimer is not None and self._queue.empty():
                    self.claimer.wake()  # a free worker: the shared queue may hold more

    def _take(self, task_id: int) -> None:
        """Run a task taken from the queue, unless shutdown began (a task of this process
        then ends ``failed``; one offered from the shared queue stays queued)."""
        with self._lock:
            offered, group = task_id in self._offered, self._offered.get(task_id)
        if not self._closing.is_set():
            task = self._claim(task_id, group) if offered else self._mark_running(task_id)
            if task is not None:
                self._run(task)
        elif not offered:
            self._finish(task_id, TaskStatus.FAILED, {"reason": "shutdown"})

    def _mark_running(self, task_id: int) -> Task | None:
        try:
            return self.store.mark_running(task_id, self.fleet.id)
        except TaskFinished:
            return None  # canceled while it waited

    def _claim(self, task_id: int, group: str | None) -> Task | None:
        """Claim a task of the shared queue (its group's lock first); None if it is not
        this process's to run."""
        assert self.claimer is not None
        if group is not None:
            holder = self.locks.acquire(group, task_id)
            if holder is not None:
                self.claimer.group_busy(group, holder)
                return None
        try:
            task = self.store.mark_running(task_id, self.fleet.id)
        except ClaimedElsewhere:
            return None  # another process runs it (and holds its group)
        except TaskFinished:
            if group is not None:
                self.locks.release(group, task_id)  # canceled while it waited
            return None
        if group is not None:
            self.groups.hold(task_id, group)  # given back when it ends
        return task

    def _run(self, task: Task) -> None:
        task_id = task.id
        ctx = RunContext(task, self.store)
        with self._lock:
            self._running[task_id] = (ctx, self._clock())
            self._counts_changed()
            if self._closing.is_set():
                ctx.stop(TaskStatus.FAILED, "shutdown")
        if task.cancel_requested or self.store.is_cancel_requested(task_id):
            self._stop_canceled(ctx)
        runner = self.runners[task.runner]
        # State changes are logged (and counted) where they are written: app.store.observed.
        try:
            status, data = TaskStatus.DONE, runner.run(task, ctx) or {}
        except TaskStopped as stop:
            status, data = stop.status, {**stop.data, "reason": stop.reason}
        except TaskFailed as failure:
            status, data = TaskStatus.FAILED, {**failure.data, "reason": failure.reason}
        except Exception as error:
            log.exception("task %s: runner %s raised", task_id, runner.name)
            status, data = TaskStatus.FAILED, {
                "reason": f"runner error: {type(error).__name__}: {error}"}
        self._finish(task_id, status, data)

    def _finish(self, task_id: int, status: TaskStatus, data: dict[str, Any]) -> None:
        try:
            self.store.finish(task_id, status, data)
        except TaskFinished:
            pass  # already ended elsewhere (shutdown after the grace period)

    def _release(self, task_id: int | None = None) -> None:
        with self._lock:
            self._pending -= 1
            if task_id is not None:
                self._running.pop(task_id, None)
                self._offered.pop(task_id, None)  # it may be offered again
            self._counts_changed()
        if task_id is not None:
            group = self.groups.group_of(task_id)
            self.groups.leave(task_id)
            if group is not None and self.claimer is not None:
                self.claimer.group_free(group)

    def _counts_changed(self) -> None:
        """Report the queue depth and the running count (the lock is held: in order)."""
        if self._on_counts is not None:
            running = len(self._running)
            self._on_counts(self._pending - running, running)

    def _watch(self) -> None:
        """Stop tasks that ran too long or were canceled through the store by another process."""
        cross_process = self.store.cancel_poll_seconds is not None
        while not self._closing.wait(self._watch_interval):
            try:
                self.groups.recheck()
            except Exception:  # the watcher must go on
                log.exception("could not look at the tasks waiting for their groups")
            with self._lock:
                running = list(self._running.items())
            now = self._clock()
            for task_id, (ctx, started) in running:
                if self.task_timeout is not None and now - started > self.task_timeout:
                    ctx.stop(TaskStatus.FAILED, "timeout")
                elif cross_process and self._cancel_flagged(task_id):
                    self._stop_canceled(ctx)

    def _cancel_flagged(self, task_id: int) -> bool:
        try:
            return self.store.is_cancel_requested(task_id)
        except Exception as error:  # the store is down: look again next round
            log.warning("task %s: could not read its cancel flag: %s", task_id, error)
            return False
