"""The executor: a bounded queue and a fixed pool of workers that run tasks with their runner.

Workers are ``threading.Thread``s. Under gunicorn's gevent worker ``threading`` is patched, so
they are greenlets on the worker's one OS thread: right for I/O-bound runners (sleeps, pipes,
HTTP), and the reason a runner must never spin the CPU for long. Unpatched (tests, ``flask
run``) they are ordinary threads. Threads start on the first submit, so a pool is never
created before gunicorn forks.

A task of a concurrency group waits for its group without holding a worker
(:mod:`.groups`).

``Executor(..., inline=True)`` starts no thread at all (as rq's ``is_async=False`` and
``work(burst=True)``): ``submit`` only queues, and ``run_pending()`` runs the queued tasks one
after the other in the calling thread until the queue is empty. Tests use it to run tasks
without threads or polling. Nothing watches an inline task while it runs: task timeouts and
cancels from other processes need the workers.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..store import Task, TaskFinished, TaskStatus, TaskStore
from ..store.groups import GroupLocks
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


class Executor:
    """Runs tasks from a bounded queue on ``workers`` workers."""

    def __init__(self, store: TaskStore, runners: Mapping[str, Runner], *, workers: int,
                 queue_size: int, task_timeout: float | None = None,
                 watch_interval: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 on_counts: Callable[[int, int], None] | None = None, inline: bool = False,
                 locks: GroupLocks | None = None):
        self.store = store
        self.runners = dict(runners)
        self.workers = workers
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
            return {"workers": self.workers, "running": running,
                    "queued": self._pending - running, "capacity": self.capacity}

    # -- lifecycle ------------------------------------------------------------------------

    def shutdown(self, grace: float = 10.0) -> None:
        """Stop taking tasks, stop running ones, and fail what did not end within ``grace``."""
        with self._lock:
            self._closing.set()
            running = [ctx for ctx, _ in self._running.values()]
            threads = list(self._threads)
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
                leftovers.append(task_id)
                self._release()  # off the queue, and no worker will take it now
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
                if self._closing.is_set():
                    self._finish(task_id, TaskStatus.FAILED, {"reason": "shutdown"})
                else:
                    self._run(task_id)
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

    def _work(self) -> None:
        while True:
            task_id = self._queue.get()
            if task_id is None:
                return
            try:
                if self._closing.is_set():  # queued tasks do not start once shutdown began
                    self._finish(task_id, TaskStatus.FAILED, {"reason": "shutdown"})
                else:
                    self._run(task_id)
            except Exception:  # a store failure must not kill the worker
                log.exception("task %s: could not be run", task_id)
            finally:
                self._release(task_id)

    def _run(self, task_id: int) -> None:
        try:
            task = self.store.mark_running(task_id)
        except TaskFinished:
            return  # canceled while it waited
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
            self._counts_changed()
        if task_id is not None:
            self.groups.leave(task_id)

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
