"""The executor: bounds, failures, timeouts and shutdown (runners: tests/runner_contract.py)."""

from __future__ import annotations

import threading

import pytest

from app.executor import QueueFull, ShuttingDown, TaskFailed
from app.store import TaskStatus
from tests.support.processes import wait_until
from tests.support.runners import ended_task


def test_never_runs_more_than_workers_at_once(make_executor):
    lock, release = threading.Lock(), threading.Event()
    state = {"now": 0, "peak": 0}

    def work(ctx):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        release.wait(10)
        with lock:
            state["now"] -= 1

    executor = make_executor({"w": work}, workers=3, queue_size=10)
    tasks = [executor.submit("w", None, "scripted") for _ in range(8)]
    wait_until(lambda: executor.stats()["running"] == 3)
    assert executor.stats()["queued"] == 5
    release.set()
    for task in tasks:
        assert ended_task(executor, task.id).status == TaskStatus.DONE
    assert state["peak"] == 3


def test_runner_errors_fail_the_task_and_the_worker_goes_on(make_executor):
    def boom(ctx):
        raise RuntimeError("disk on fire")

    def refuse(ctx):
        raise TaskFailed("exit code 3", code=3)

    executor = make_executor({"boom": boom, "refuse": refuse, "ok": lambda ctx: {"x": 1}},
                             workers=1, inline=True)
    first = executor.submit("boom", None, "scripted")
    second = executor.submit("refuse", None, "scripted")
    third = executor.submit("ok", None, "scripted")
    assert executor.run_pending() == 3
    get = executor.store.get_task
    assert get(first.id).error == "runner error: RuntimeError: disk on fire"
    assert get(second.id).error == "exit code 3"
    assert executor.store.events_after(second.id, 0)[-1].data == {"code": 3,
                                                                  "reason": "exit code 3"}
    assert get(third.id).status == TaskStatus.DONE
    assert executor.store.events_after(third.id, 0)[-1].data == {"x": 1}


def test_task_timeout_fails_with_reason_timeout(make_executor):
    executor = make_executor({"slow": lambda ctx: ctx.sleep(30)}, task_timeout=0.2,
                             watch_interval=0.05)
    task = executor.submit("slow", None, "scripted")
    final = ended_task(executor, task.id)
    assert final.status == TaskStatus.FAILED and final.error == "timeout"


def test_full_queue_refuses_without_creating(make_executor):
    executor = make_executor({"ok": lambda ctx: None}, workers=1, queue_size=1, inline=True)
    executor.submit("ok", None, "scripted")
    executor.submit("ok", None, "scripted")
    with pytest.raises(QueueFull):
        executor.submit("ok", None, "scripted")
    assert len(executor.store.list_tasks(10)) == 2
    assert executor.run_pending() == 2  # which frees the places
    assert executor.submit("ok", None, "scripted").status == TaskStatus.QUEUED


def test_inline_mode_starts_no_thread_and_runs_in_order(make_executor):
    order = []
    executor = make_executor({"a": lambda ctx: order.append("a"),
                              "b": lambda ctx: order.append("b")}, inline=True)
    before = threading.active_count()
    tasks = [executor.submit(title, None, "scripted") for title in ("a", "b", "a")]
    assert threading.active_count() == before and order == []
    assert executor.stats()["queued"] == 3
    assert executor.run_pending() == 3
    assert order == ["a", "b", "a"] and threading.active_count() == before
    assert all(executor.store.get_task(t.id).status == TaskStatus.DONE for t in tasks)
    assert executor.stats() == {"workers": 4, "running": 0, "queued": 0, "capacity": 4 + 10}
    assert executor.run_pending() == 0


def test_inline_shutdown_fails_what_is_queued(make_executor):
    executor = make_executor({"ok": lambda ctx: None}, inline=True)
    queued = executor.submit("ok", None, "scripted")
    executor.shutdown(grace=5)
    final = executor.store.get_task(queued.id)
    assert final.status == TaskStatus.FAILED and final.error == "shutdown"
    with pytest.raises(ShuttingDown):
        executor.submit("ok", None, "scripted")


def test_shutdown_fails_queued_tasks_and_refuses_new_ones(make_executor):
    executor = make_executor({"slow": lambda ctx: ctx.sleep(30)}, workers=1, queue_size=5)
    running = executor.submit("slow", None, "scripted")
    queued = executor.submit("slow", None, "scripted")
    wait_until(lambda: executor.store.get_task(running.id).status == TaskStatus.RUNNING)
    executor.shutdown(grace=5)
    for task in (running, queued):
        final = executor.store.get_task(task.id)
        assert final.status == TaskStatus.FAILED and final.error == "shutdown"
    with pytest.raises(ShuttingDown):
        executor.submit("slow", None, "scripted")


def test_counts_follow_the_queue_and_the_workers(make_executor):
    counts = []
    gate = threading.Event()
    executor = make_executor({"wait": lambda ctx: gate.wait(10)}, workers=1, queue_size=5,
                             on_counts=lambda queued, running: counts.append((queued, running)))
    tasks = [executor.submit("wait", None, "scripted") for _ in range(3)]
    wait_until(lambda: counts[-1] == (2, 1))
    assert executor.stats()["queued"] == 2 and executor.stats()["running"] == 1
    gate.set()
    for task in tasks:
        ended_task(executor, task.id)
    wait_until(lambda: counts[-1] == (0, 0))
    assert max(running for _, running in counts) == 1  # one worker


def test_shutdown_takes_leftovers_off_the_counts(make_executor):
    counts = []
    gate = threading.Event()
    executor = make_executor({"stuck": lambda ctx: gate.wait(10)}, workers=1, queue_size=5,
                             on_counts=lambda queued, running: counts.append((queued, running)))
    executor.submit("stuck", None, "scripted")
    queued = executor.submit("stuck", None, "scripted")
    wait_until(lambda: counts[-1] == (1, 1))
    executor.shutdown(grace=0.1)  # the runner ignores the stop: its task is a leftover
    assert executor.store.get_task(queued.id).status == TaskStatus.FAILED
    assert counts[-1] == (0, 1)  # the queued one left the queue; the stuck one still runs
    gate.set()
    wait_until(lambda: counts[-1] == (0, 0))
