"""The in-process store's memory budget (OPS_MEMORY_MAX_MB): what it counts, whom it evicts,
and that the process's memory levels off under a flood of big tasks."""

from __future__ import annotations

import gc
import logging
import os
import tracemalloc

import pytest

from app.services import services
from app.store import MemoryStore, TaskNotFound, TaskStatus
from app.stream import format_event
from tests.support.api import make_settings
from tests.support.sse import events

MIB = 1024 * 1024
LINE = 4000  # bytes of an output line, the recipe runner's longest by default


def log_line(n: int) -> dict:
    """A recipe's output event: a fresh 4,000-byte string each time, as a process writes."""
    return {"stream": "stdout", "line": f"{n:08d}" + "x" * (LINE - 8)}


def finished_task(store, events_count: int, *, stream: bool = False) -> int:
    """A task that logged ``events_count`` lines and ended; ``stream``: formatted for SSE."""
    task = store.create_task("big", None, "recipe")
    store.mark_running(task.id)
    for n in range(events_count):
        store.append_event(task.id, "log", log_line(n))
    store.finish(task.id, TaskStatus.DONE, {"exit_code": 0})
    if stream:
        for event in store.events_after(task.id, 0, limit=events_count + 3):
            format_event(event)
    return task.id


def evictions(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "app.store.memory"
            and r.getMessage().startswith("memory store: evicted")]


def rss() -> int:
    """This process's resident set size, in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_the_count_follows_the_memory_the_tasks_take():
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        store = MemoryStore()
        for n in range(300):
            task = store.create_task(f"task {n}", "a body " * 20, "dev")
            store.mark_running(task.id)
            for tick in range(n % 7):
                store.append_event(task.id, "tick", {"n": tick, "of": [tick, {"left": 7 - tick}]})
            if n % 3 == 0:
                store.append_event(task.id, "log", log_line(n))
            store.finish(task.id, TaskStatus.DONE, {})
        gc.collect()
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert 0.8 * taken < store.stored_bytes < 1.3 * taken
    # Every task deleted: nothing left counted.
    assert store.purge_finished(store.get_task(300).finished_at.replace(year=9999), 1000) == 300
    assert store.stored_bytes == 0


def scene(store) -> tuple[int, int, list[int]]:
    """A queued task, a running one, and three that logged 25 lines each and ended in
    another order than their ids (the second, the first, the third)."""
    queued = store.create_task("queued", None, "dev").id
    running = store.create_task("running", None, "dev").id
    store.mark_running(running)
    ids = [store.create_task(f"f{n}", None, "recipe").id for n in range(3)]
    for task_id in (ids[1], ids[0], ids[2]):
        store.mark_running(task_id)
        for n in range(25):
            store.append_event(task_id, "log", log_line(n))
        store.finish(task_id, TaskStatus.DONE, {})
    return queued, running, ids


def test_past_the_budget_the_tasks_that_ended_first_go_whole_and_nothing_live(caplog):
    caplog.set_level(logging.INFO)
    unbounded = MemoryStore()
    scene(unbounded)
    budget = unbounded.stored_bytes + 2000  # just above what the scene takes
    store = MemoryStore(max_bytes=budget)
    queued, running, ids = scene(store)
    assert store.stored_bytes == unbounded.stored_bytes and evictions(caplog) == []

    before = store.stored_bytes
    store.append_event(running, "log", log_line(0))  # over by a little: the first ended goes
    with pytest.raises(TaskNotFound):
        store.get_task(ids[1])
    with pytest.raises(TaskNotFound):
        store.events_after(ids[1], 0)
    assert [t.id for t in store.list_tasks(10)] == [ids[2], ids[0], running, queued]
    [line] = evictions(caplog)
    assert line.levelno == logging.WARNING and line.task_id == ids[1]
    assert f"task {ids[1]}, {line.bytes_freed} bytes freed" in line.getMessage()
    assert 25 * LINE < line.bytes_freed < before - 25 * LINE  # the task's, whole
    assert store.stored_bytes <= budget

    for n in range(200):  # the running task alone outgrows the budget
        store.append_event(running, "log", log_line(n))
    assert [r.task_id for r in evictions(caplog)] == [ids[1], ids[0], ids[2]]
    assert [t.id for t in store.list_tasks(10)] == [running, queued]
    assert store.stored_bytes > budget  # queued and running tasks are never evicted
    assert len(store.events_after(running, 0, limit=1000)) == 2 + 201  # created, status, logs
    store.finish(running, TaskStatus.DONE, {})  # ended, it goes at the next write
    store.append_event(queued, "note", {})
    assert [t.id for t in store.list_tasks(10)] == [queued]
    assert store.get_task(queued).status == TaskStatus.QUEUED


def test_an_evicted_task_answers_404_and_its_stream_ends_cleanly(make_app, caplog):
    caplog.set_level(logging.INFO)
    app = make_app(make_settings(memory_max_mb=1))
    store = services(app).store
    client = app.test_client()
    headers = {"X-Admin-Token": make_settings().admin_token}
    streamed = finished_task(store, 150)  # 0.6 MiB: more than one page of the stream
    response = client.get(f"/ops/tasks/{streamed}/stream", headers=headers, buffered=False)
    chunks = iter(response.response)
    sent = "".join(next(chunks).decode() for _ in range(2))  # the retry line, the first page
    later = [finished_task(store, 100) for _ in range(3)]  # the first two push it out
    rest = b"".join(chunks).decode()  # the stream ends, without an error
    response.close()
    got = events(sent + rest)
    assert 0 < len(got) < 152 and got[-1]["kind"] != "done"
    for path in (f"/ops/tasks/{streamed}", f"/ops/tasks/{streamed}/stream"):
        assert client.get(path, headers=headers).status_code == 404
    listed = client.get("/ops/tasks", headers=headers).get_json()["tasks"]
    assert streamed not in [t["id"] for t in listed] and later[-1] in [t["id"] for t in listed]
    assert streamed in [r.task_id for r in evictions(caplog)]


def test_rss_levels_off_under_a_flood_of_big_finished_tasks(caplog):
    """Keeping every task of the flood would take about 200 MiB here (half of them streamed,
    which also formats their text); the process must not grow with the flood."""
    caplog.set_level(logging.ERROR)  # the hundreds of eviction lines are not kept
    budget = 8 * MIB
    store = MemoryStore(max_bytes=budget)
    per_task = 50  # events of 4,000 bytes: about 0.2 MiB a task
    for n in range(100):  # warm-up: the budget and the formatted-text cache fill up
        finished_task(store, per_task, stream=n % 2 == 0)
    gc.collect()
    warm = rss()
    for half in range(2):
        for n in range(300):
            finished_task(store, per_task, stream=n % 2 == 0)
        gc.collect()
        if half == 0:
            middle = rss()
    end = rss()
    assert store.stored_bytes <= budget
    kept_if_all = 300 * per_task * LINE  # what the second half alone would add, unstreamed
    assert end - middle < kept_if_all / 10, (warm, middle, end)
    assert end - warm < budget, (warm, middle, end)
