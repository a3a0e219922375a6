"""The runner contract's tests, written once; each runner's test module subclasses
:class:`RunnerContract` and provides ``runner`` (the instance under test) and ``jobs``:
``{"quick": (title, body, extra), "long": ...}``, a task that succeeds soon and one that runs
until stopped. ``long_runner`` runs the long job (by default ``runner``). A runner whose tasks
can fail also mixes in :class:`FailingRunnerContract` and adds ``jobs["failing"]``."""

from __future__ import annotations

import pytest

from app.executor import Executor
from app.store import TERMINAL_KINDS, MemoryStore, TaskStatus
from tests.support.processes import wait_until


class RunnerContract:
    @pytest.fixture
    def long_runner(self, runner):
        return runner

    @pytest.fixture
    def executor(self, runner):
        """Runs tasks inline, in the test's thread (see ``ended``)."""
        executor = Executor(MemoryStore(), {runner.name: runner}, workers=2, queue_size=4,
                            inline=True)
        yield executor
        executor.shutdown(grace=5)

    @pytest.fixture
    def long_executor(self, long_runner):
        executor = Executor(MemoryStore(), {long_runner.name: long_runner}, workers=2,
                            queue_size=4)
        yield executor
        executor.shutdown(grace=5)

    def submit(self, executor, runner, jobs, which):
        title, body, extra = jobs[which]
        return executor.submit(title, body, runner.name, extra)

    def ended(self, executor, task_id, timeout=30):
        """The task once it has ended: run inline, or waited for on the workers."""
        if executor.inline:
            executor.run_pending()
            task = executor.store.get_task(task_id)
            assert task.status.is_terminal, task
            return task
        return wait_until(lambda: (t := executor.store.get_task(task_id)).status.is_terminal
                          and t, timeout=timeout, message=f"task {task_id} to end")

    def kinds(self, executor, task_id):
        return [e.kind for e in executor.store.events_after(task_id, 0, limit=10_000)]

    def test_quick_task_ends_done_with_one_terminal_event(self, executor, runner, jobs):
        task = self.submit(executor, runner, jobs, "quick")
        assert self.ended(executor, task.id).status == TaskStatus.DONE
        kinds = self.kinds(executor, task.id)
        assert kinds[:2] == ["created", "status"] and kinds[-1] == "done"
        assert sum(k in TERMINAL_KINDS for k in kinds) == 1
        assert executor.store.get_task(task.id).runner == runner.name

    def test_cancel_stops_a_running_task_promptly(self, long_executor, long_runner, jobs):
        executor, runner = long_executor, long_runner
        task = self.submit(executor, runner, jobs, "long")
        wait_until(lambda: executor.store.get_task(task.id).status == TaskStatus.RUNNING)
        executor.cancel(task.id)
        ended = self.ended(executor, task.id, timeout=10)
        assert ended.status == TaskStatus.CANCELED
        assert self.kinds(executor, task.id)[-1] == "canceled"

    def test_shutdown_fails_running_tasks_with_reason_shutdown(self, long_executor, long_runner,
                                                               jobs):
        executor, runner = long_executor, long_runner
        task = self.submit(executor, runner, jobs, "long")
        wait_until(lambda: executor.store.get_task(task.id).status == TaskStatus.RUNNING)
        executor.shutdown(grace=10)
        ended = executor.store.get_task(task.id)
        assert ended.status == TaskStatus.FAILED and ended.error == "shutdown"


class FailingRunnerContract:
    """For runners whose tasks can fail: ``jobs["failing"]`` ends ``failed`` with a reason."""

    def test_failing_task_ends_failed_with_a_reason(self, executor, runner, jobs):
        task = self.submit(executor, runner, jobs, "failing")
        ended = self.ended(executor, task.id)
        assert ended.status == TaskStatus.FAILED and ended.error
        assert self.kinds(executor, task.id)[-1] == "failed"
