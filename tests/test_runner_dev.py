"""The dev runner: the runner contract, and its fixed sequence."""

import pytest

from app.executor.runners.dev import DevRunner
from runner_contract import RunnerContract


class TestDevRunner(RunnerContract):
    @pytest.fixture
    def runner(self):
        return DevRunner(tick_seconds=0.01)

    @pytest.fixture
    def long_runner(self):
        return DevRunner(tick_seconds=30)  # stopped long before its first tick

    @pytest.fixture
    def jobs(self):
        return {"quick": ("quick", None, {}), "long": ("long", None, {})}

    def test_four_ticks_then_done(self, executor, runner, jobs):
        task = self.submit(executor, runner, jobs, "quick")
        self.ended(executor, task.id)
        events = executor.store.events_after(task.id, 0)
        assert [e.kind for e in events] == ["created", "status", "tick", "tick", "tick", "tick",
                                            "done"]
        assert [e.data["n"] for e in events if e.kind == "tick"] == [1, 2, 3, 4]
