"""The executor: a bounded queue and a fixed pool of workers that run tasks with their runner.

Workers are ``threading.Thread``s. Under gunicorn's gevent worker ``threading`` is patched, so
they are greenlets on the worker's one OS thread: right for I/O-bound runners (sleeps, pipes,
HTTP), and the reason a runner must never spin the CPU for long. Unpatched (tests, ``flask
run``) they are ordinary threads. Threads start on the first submit, so a pool is never
created before gunicorn forks.

A task of a concurrency group (its recipe's ``concurrency``, in the ``created`` event as
``concurrency_group``) takes the group's lock (:mod:`app.store.groups`) when it is submitted,
and gives it back when it ends, however it ends. A task that cannot take it is *parked*: it
stays ``queued`` without a place on the queue, so that it holds no worker, and is put on the
queue once it holds the lock: at once when a task of this process gives the group back, at
the watcher's pace (the store's poll interval) when the holder runs in another process. What
a task does when its group is busy is its recipe's policy: wait (``queue``), be refused
(``reject``: :class:`GroupBusy`) or cancel the holder (``cancel-running``).

``Executor(..., inline=True)`` starts no thread at all (as rq's ``is_async=False`` and
``work(burst=True)``): ``submit`` only queues, and ``run_pending()`` runs the queued tasks one
after the other in the calling thread until the queue is empty. Tests use it to run tasks
without threads or polling. Nothing watches an inline task while it runs: task timeouts and
cancels from other processes need the workers.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..store import WAITING, Task, TaskFinished, TaskNotFound, TaskStatus, TaskStore
from ..store.groups import GroupLocks
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


class GroupBusy(Exception):
    """A recipe whose policy is ``reject`` was asked for while a task holds its group."""

    def __init__(self, group: str, task_id: int):
        super().__init__(f"group {group} is busy with task {task_id}")
        self.group = group
        self.task_id = task_id


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
        self.locks = locks if locks is not None else store.group_locks()
        self._groups: dict[int, str] = {}  # this process's unfinished tasks with a group
        self._parked: dict[str, list[int]] = {}  # per group, the tasks waiting, oldest first
        self._waiting_for: dict[int, int | None] = {}  # what each one's last waiting event said

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
                holder = self.locks.holder(group)
                if holder is not None:
                    raise GroupBusy(group, holder)
            task = self.store.create_task(title, body, runner, extra, created_by)
        except BaseException:
            self._release()
            raise
        if group is None:
            self._queue.put(task.id)
            return task
        return self._enter_group(task, group, concurrency_policy, created_by)

    # -- concurrency groups ---------------------------------------------------------------

    def _enter_group(self, task: Task, group: str, policy: str, actor: str | None) -> Task:
        """Queue the task if it takes its group's lock; else park it (and, by the policy
        ``cancel-running``, cancel the holder). Return the task as it is now."""
        with self._lock:
            self._groups[task.id] = group
            # Parked before it asks: a holder that gives the group back meanwhile wakes it.
            parked = self._parked.setdefault(group, [])
            bisect.insort(parked, task.id)
            first = parked[0]
        if first != task.id:
            self._wake(group)  # an older parked task of the group asks first
        with self._lock:
            if task.id not in self._parked.get(group, ()):
                return task  # it holds the lock and is on the queue
        try:
            waits_for = self.locks.acquire(group, task.id)
        except Exception as error:  # the store is away: the watcher asks again
            log.warning("task %s: could not take concurrency group %s yet: %s", task.id,
                        group, error)
            return task
        if waits_for is None:
            self._unpark(task.id, group)
            return task
        if policy == "cancel-running":
            self._cancel_holder(group, actor or f"task {task.id}")
        self._note_waiting(task.id, group, waits_for)
        with self._lock:
            if task.id not in self._parked.get(group, ()):
                return task
        return dataclasses.replace(task, waiting_for=waits_for)

    def _cancel_holder(self, group: str, actor: str) -> None:
        """Cancel the task holding the group (``cancel-running``), naming ``actor``."""
        try:
            holder = self.locks.holder(group)
            if holder is not None:
                log.info("task %s: canceled by %s for its concurrency group %s", holder,
                         actor, group)
                self.cancel(holder, actor)
        except (TaskFinished, TaskNotFound):
            pass  # it ended meanwhile: the group is given back
        except Exception as error:
            log.warning("concurrency group %s: could not cancel its holder: %s", group, error)

    def _note_waiting(self, task_id: int, group: str, waits_for: int | None) -> None:
        """Write a ``waiting`` event when what the task waits for changed."""
        with self._lock:
            if task_id not in self._parked.get(group, ()):
                return  # it holds the lock now (or ended): it waits no more
            if task_id in self._waiting_for and self._waiting_for[task_id] == waits_for:
                return
            if waits_for is None and task_id not in self._waiting_for:
                return
            self._waiting_for[task_id] = waits_for
        try:
            self.store.append_event(task_id, WAITING,
                                    {"waiting_for": waits_for, "concurrency_group": group})
        except Exception as error:
            log.warning("task %s: could not record what it waits for: %s", task_id, error)

    def _unpark(self, task_id: int, group: str, ended: bool = False) -> bool:
        """Put a parked task on the queue; False if it was not parked (any more). A task
        that ``ended`` gets no more events."""
        with self._lock:
            parked = self._parked.get(group)
            if not parked or task_id not in parked:
                return False
            parked.remove(task_id)
            if not parked:
                del self._parked[group]
            waited = self._waiting_for.pop(task_id, None) is not None
        if waited and not ended:
            self._note_waiting_done(task_id, group)
        self._queue.put(task_id)
        return True

    def _note_waiting_done(self, task_id: int, group: str) -> None:
        try:
            self.store.append_event(task_id, WAITING,
                                    {"waiting_for": None, "concurrency_group": group})
        except TaskFinished:
            pass
        except Exception as error:
            log.warning("task %s: could not record that it waits no more: %s", task_id, error)

    def _wake(self, group: str) -> None:
        """Let the oldest parked task of the group take the lock, if it can now."""
        if self._closing.is_set():
            return
        with self._lock:
            parked = self._parked.get(group)
            first = parked[0] if parked else None
        if first is None:
            return
        try:
            waits_for = self.locks.acquire(group, first)
        except Exception as error:
            log.warning("task %s: could not take concurrency group %s yet: %s", first, group,
                        error)
            return
        if waits_for is None:
            self._unpark(first, group)
        else:
            self._note_waiting(first, group, waits_for)

    def _leave_group(self, task_id: int) -> None:
        """The task ended (or will never run here): give its group back, wake the next."""
        with self._lock:
            group = self._groups.pop(task_id, None)
            self._waiting_for.pop(task_id, None)
        if group is None:
            return
        try:
            self.locks.release(group, task_id)
        except Exception as error:  # it is taken over as stale once the task shows as ended
            log.warning("task %s: could not give back concurrency group %s: %s", task_id,
                        group, error)
        self._wake(group)

    def _recheck_parked(self) -> None:
        """The watcher's round: a parked task canceled from elsewhere goes to the queue (a
        worker then finds it ended), and each group's next task asks for the lock again
        (its holder may run in another process)."""
        with self._lock:
            parked = {group: list(ids) for group, ids in self._parked.items()}
        for group, ids in parked.items():
            for task_id in ids:
                try:
                    ended = self.store.get_task(task_id).status.is_terminal
                except TaskNotFound:
                    ended = True
                except Exception:
                    ended = False
                if ended:
                    self._unpark(task_id, group, ended=True)
            self._wake(group)

    def cancel(self, task_id: int, actor: str | None = None) -> Task:
        """Cancel a queued task, or ask a running one to stop at its next checkpoint.

        ``actor`` (who asks) is named in the ``canceled`` event; the first asker wins."""
        task = self.store.request_cancel(task_id, actor)
        with self._lock:
            running = self._running.get(task_id)
            group = self._groups.get(task_id)
        if running is not None:
            self._stop_canceled(running[0])
        elif group is not None and task.status.is_terminal:
            # Canceled before it started: off to a worker, which finds it ended, and its
            # group is given back now rather than when a worker gets to it.
            self._unpark(task_id, group, ended=True)
            self._leave_group(task_id)
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
            for parked in self._parked.values():
                leftovers.extend(parked)
                self._pending -= len(parked)  # no worker will take them now
            self._parked.clear()
            self._counts_changed()
        for task_id in leftovers:
            self._finish(task_id, TaskStatus.FAILED, {"reason": "shutdown"})
            self._leave_group(task_id)

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
            self._leave_group(task_id)

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
                self._recheck_parked()
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
