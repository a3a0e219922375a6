"""The wrapper the app uses: the store contract through it, and every task ending counted
and logged once, including the endings a backend writes by itself."""

from __future__ import annotations

import logging
import time

import pytest

from app.metrics import Metrics
from app.store import MemoryStore, ObservedStore, TaskObserver, TaskStatus
from tests.store_contract import StoreContract
from tests.support.processes import wait_until
from tests.support.supabase_fixtures import open_store


class TestObservedStore(StoreContract):
    @pytest.fixture
    def store(self):
        store = ObservedStore(MemoryStore(), Metrics())
        yield store
        store.close()


def finished(metrics: Metrics, status: str) -> float:
    return metrics.registry.get_sample_value("ops_tasks_finished_total",
                                             {"status": status}) or 0


def endings(caplog, task_id: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "app.tasks" and r.task_id == task_id
            and r.status in ("done", "failed", "canceled")]


def test_each_ending_is_counted_and_logged_once(caplog):
    caplog.set_level(logging.INFO, logger="app.tasks")
    metrics = Metrics()
    store = ObservedStore(MemoryStore(), metrics)
    queued = store.create_task("queued", None, "dev")
    store.request_cancel(queued.id)
    running = store.create_task("running", None, "dev")
    store.mark_running(running.id)
    store.finish(running.id, TaskStatus.DONE, {})
    assert (finished(metrics, "canceled"), finished(metrics, "done")) == (1, 1)
    [line] = endings(caplog, queued.id)
    assert (line.status, line.runner, line.reason) == (
        "canceled", "dev", "canceled before it started")
    assert [r.status for r in endings(caplog, running.id)] == ["done"]
    assert metrics.registry.get_sample_value("ops_events_written_total") == 5


@pytest.mark.live
def test_an_orphan_ended_by_the_supabase_sweep_is_counted_and_logged_once(supabase_db,
                                                                          caplog):
    caplog.set_level(logging.INFO, logger="app.tasks")
    metrics = Metrics()
    with open_store(supabase_db) as raw:
        survivor = ObservedStore(raw, metrics)
        survivor.list_tasks(1)  # starts its maintenance: leases and the orphan sweep
        with open_store(supabase_db) as dying:
            orphan = dying.create_task("orphan", None, "dev")
            dying.mark_running(orphan.id)
        # `dying` is gone without ending its task, as after kill -9
        wait_until(lambda: finished(metrics, "failed") == 1, timeout=10,
                   message="the orphan's end in the survivor's metrics")
        time.sleep(1.0)  # more sweeps: the ending is not counted again
        assert finished(metrics, "failed") == 1
        [line] = endings(caplog, orphan.id)
        assert (line.status, line.runner) == ("failed", "dev")
        assert line.reason.startswith("orphaned") and line.duration_s is not None
        assert survivor.get_task(orphan.id).status == TaskStatus.FAILED


@pytest.mark.live
def test_a_queued_cancel_is_counted_once_by_the_process_that_wrote_it(supabase_db, caplog):
    """Two processes cancel one queued task at once: one writes its end, and only that one
    counts it, though the other's cancel also answers with the canceled task."""
    caplog.set_level(logging.INFO, logger="app.tasks")
    metrics_a, metrics_b = Metrics(), Metrics()
    with open_store(supabase_db) as raw_a, open_store(supabase_db) as raw_b:
        a, b = ObservedStore(raw_a, metrics_a), ObservedStore(raw_b, metrics_b)
        task = a.create_task("t", None, "dev")
        writer = raw_b._writer
        set_final_status = writer._set_final_status
        answers = []

        def cancel_from_a_meanwhile(task_id, status):
            # b flagged the row and stored the terminal event; a's cancel lands in between
            answers.append(a.request_cancel(task_id))
            set_final_status(task_id, status)

        writer._set_final_status = cancel_from_a_meanwhile
        assert b.request_cancel(task.id).status == TaskStatus.CANCELED
        assert [t.status for t in answers] == [TaskStatus.CANCELED]
        assert (finished(metrics_a, "canceled"), finished(metrics_b, "canceled")) == (0, 1)
        [line] = endings(caplog, task.id)
        assert (line.status, line.runner) == ("canceled", "dev")


class Heard(TaskObserver):
    def __init__(self, fail: bool = False):
        self.fail = fail
        self.started: list[int] = []
        self.ended: list[tuple[int, str]] = []

    def task_started(self, task):
        self.started.append(task.id)
        if self.fail:
            raise RuntimeError("observer broke")

    def task_ended(self, task_id, status, data, finished_at):
        assert finished_at is not None
        self.ended.append((task_id, TaskStatus(status).value))
        if self.fail:
            raise RuntimeError("observer broke")


def test_observers_hear_each_start_and_ending_once_and_cannot_undo_them(caplog):
    store = ObservedStore(MemoryStore(), Metrics())
    heard, broken = Heard(), Heard(fail=True)
    store.observe(broken)
    store.observe(heard)
    queued = store.create_task("queued", None, "dev")
    ran = store.create_task("ran", None, "dev")
    store.mark_running(ran.id)
    store.finish(ran.id, TaskStatus.DONE, {})
    store.request_cancel(queued.id, actor="bob")  # an ending the backend writes itself
    assert heard.started == broken.started == [ran.id]
    assert heard.ended == broken.ended == [(ran.id, "done"), (queued.id, "canceled")]
    assert store.get_task(ran.id).status == TaskStatus.DONE  # the writes stand
    assert store.get_task(queued.id).status == TaskStatus.CANCELED
    assert sum("a task observer failed" in r.getMessage() for r in caplog.records) == 3
