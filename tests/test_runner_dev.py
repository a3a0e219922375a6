"""The dev runner: the runner contract, and its fixed sequence."""

import pytest

from app import Settings
from app.executor import Executor, build_runners
from app.executor.runners.dev import DevRunner
from app.store import MemoryStore
from tests.runner_contract import RunnerContract
from tests.support.api import ADMIN


class TestDevRunner(RunnerContract):
    @pytest.fixture
    def runner(self):
        return DevRunner(tick_seconds=0.01, ticks=4)

    @pytest.fixture
    def long_runner(self):
        return DevRunner(tick_seconds=30, ticks=4)  # stopped long before its first tick

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


def test_tick_count_comes_from_ops_dev_ticks():
    settings = Settings.from_env({"SETTINGS_ADMIN_TOKEN": "x", "DEV_LOCAL_LLM": "1",
                                  "OPS_DEV_TICK_SECONDS": "0", "OPS_DEV_TICKS": "2"})
    executor = Executor(MemoryStore(), build_runners(settings), workers=1, queue_size=1,
                        inline=True)
    try:
        task = executor.submit("t", None, "dev")
        assert executor.run_pending() == 1
        kinds = [e.kind for e in executor.store.events_after(task.id, 0)]
        assert kinds == ["created", "status", "tick", "tick", "done"]
    finally:
        executor.shutdown(grace=5)


def test_four_ticks_by_default():
    assert Settings.from_env({"SETTINGS_ADMIN_TOKEN": ADMIN}).dev_ticks == 4


def test_ticks_keep_their_schedule_when_wake_ups_are_late():
    """Tick n is due n intervals after the start: a late wake-up shortens the next wait
    instead of pushing every later tick back (tasks would drift into lockstep)."""
    now = [100.0]
    asked = []

    class LateContext:
        def sleep(self, seconds):
            asked.append(round(seconds, 6))
            now[0] += seconds + 0.1  # every wake-up comes 0.1 s late

        def emit(self, kind, data):
            pass

    DevRunner(tick_seconds=0.5, ticks=4, clock=lambda: now[0]).run(None, LateContext())
    assert asked == [0.5, 0.4, 0.4, 0.4]
    assert now[0] == pytest.approx(100.0 + 4 * 0.5 + 0.1)
