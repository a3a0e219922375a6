"""The in-process store's task list: pages of every filter match a plain filter of every task,
whatever happened to them, and a page's cost does not grow with the store."""

from __future__ import annotations

import random
import sys
import tracemalloc

import pytest

from app.store import MemoryStore, TaskNotFound, TaskStatus
from app.store.ordered import OrderedIds

FILTERS = [None, *TaskStatus]


def brute_force(store, created: list[int], status, before_id=None) -> list[int]:
    """Every task that still exists, newest first, filtered the plain way."""
    found = []
    for task_id in reversed(created):
        try:
            task = store.get_task(task_id)
        except TaskNotFound:
            continue
        if (status is None or task.status == status) and (before_id is None
                                                          or task_id < before_id):
            found.append(task_id)
    return found


def paged(store, status, limit: int) -> list[int]:
    """Every page of the filter, as a client walks them with the last id as its cursor."""
    ids, cursor = [], None
    while True:
        page = store.list_tasks(limit, status, cursor)
        assert len(page) <= limit
        assert all(status is None or task.status == status for task in page)
        ids += [task.id for task in page]
        if len(page) < limit:
            return ids
        cursor = page[-1].id


@pytest.mark.parametrize("seed", range(8))
def test_pages_of_every_filter_match_a_plain_filter(seed, clock):
    """Random creates, starts, logs, finishes, cancels (queued and running), retention
    purges and evictions by the memory budget; checked at random moments."""
    rng = random.Random(seed)
    store = MemoryStore(clock=clock.now, max_bytes=rng.choice([None, 200_000, 600_000]))
    created: list[int] = []
    by_status: dict[TaskStatus, set[int]] = {status: set() for status in TaskStatus}

    def pick(*statuses):
        """A random task among those last seen in ``statuses`` that still has that status."""
        candidates = sorted(set().union(*(by_status[s] for s in statuses)))
        rng.shuffle(candidates)
        for task_id in candidates:
            try:
                if store.get_task(task_id).status in statuses:
                    return task_id
            except TaskNotFound:
                pass
            for status in statuses:
                by_status[status].discard(task_id)
        return None

    for step in range(1200):
        clock.advance(rng.random())
        action = rng.choices(["create", "start", "log", "finish", "cancel", "purge", "check"],
                             weights=[30, 15, 20, 12, 8, 1, 2])[0]
        if action == "create":
            task = store.create_task(f"t{step}", "body" * rng.randrange(50), "dev")
            created.append(task.id)
            by_status[TaskStatus.QUEUED].add(task.id)
        elif action == "start" and (task_id := pick(TaskStatus.QUEUED)):
            store.mark_running(task_id)
            by_status[TaskStatus.RUNNING].add(task_id)
        elif action == "log" and (task_id := pick(TaskStatus.RUNNING)):
            store.append_event(task_id, "log", {"line": "x" * rng.randrange(4000)})
        elif action == "finish" and (task_id := pick(TaskStatus.RUNNING, TaskStatus.QUEUED)):
            status = rng.choice([TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELED])
            store.finish(task_id, status, {"reason": "r"})
            by_status[status].add(task_id)
        elif action == "cancel" and (task_id := pick(TaskStatus.RUNNING, TaskStatus.QUEUED)):
            if store.request_cancel(task_id).status == TaskStatus.CANCELED:
                by_status[TaskStatus.CANCELED].add(task_id)
        elif action == "purge":
            store.purge_finished(clock.now().replace(second=0), rng.randrange(1, 50))
        elif action == "check":
            check_pages(store, created, rng)
    check_pages(store, created, rng)
    if store._max_bytes:
        assert len(brute_force(store, created, None)) < len(created)  # evictions happened


def check_pages(store, created, rng):
    for status in FILTERS:
        expected = brute_force(store, created, status)
        assert paged(store, status, rng.randrange(1, 30)) == expected
        for before_id in (1, rng.randrange(1, len(created) + 2), len(created) + 5):
            limit = rng.randrange(1, 40)
            page = store.list_tasks(limit, status, before_id)
            assert [t.id for t in page] == brute_force(store, created, status, before_id)[:limit]
            assert all(task == store.get_task(task.id) for task in page)


@pytest.mark.parametrize("seed", range(6))
def test_ordered_ids_match_a_sorted_list_through_splits_and_merges(seed):
    rng = random.Random(seed)
    ids, plain = OrderedIds(block=4), set()
    for step in range(3000):
        task_id = rng.randrange(1, 400)
        if rng.random() < (0.7 if step < 1500 else 0.2):  # grows, then shrinks
            if task_id not in plain:
                ids.add(task_id)
                plain.add(task_id)
        else:
            if plain and rng.random() < 0.7:
                task_id = rng.choice(sorted(plain))
            ids.discard(task_id)
            plain.discard(task_id)
        newest_first = sorted(plain, reverse=True)
        limit, before_id = rng.randrange(1, 30), rng.choice([None, rng.randrange(0, 402)])
        assert ids.before(limit, before_id) == [
            i for i in newest_first if before_id is None or i < before_id][:limit]
        # Thinned-out blocks merged: any two neighbours hold more than a block's worth, and
        # no block more than two.
        blocks = ids._blocks
        assert all(len(a) + len(b) > 4 for a, b in zip(blocks, blocks[1:]))
        assert all(0 < len(block) <= 8 for block in blocks)
    assert ids.before(1000) == sorted(plain, reverse=True)


def filled(count: int) -> MemoryStore:
    """``count`` tasks: the 12 oldest still running, one in 20 queued, the others ended
    (failed, canceled or done): a rare status is spread over the whole store."""
    store = MemoryStore()
    for n in range(count):
        task_id = store.create_task(f"t{n}", None, "dev").id
        if n % 20 == 0 and n >= 12:
            continue
        store.mark_running(task_id)
        if n >= 12:
            status = (TaskStatus.FAILED if n % 7 == 0 else
                      TaskStatus.CANCELED if n % 11 == 0 else TaskStatus.DONE)
            store.finish(task_id, status, {"reason": "r"})
    return store


def cost(function, *args) -> tuple[int, int]:
    """The Python lines ``function(*args)`` runs, and the most memory it holds at once
    (bytes)."""
    lines = 0

    def tracer(frame, event, arg):
        nonlocal lines
        lines += event == "line"
        return tracer

    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        sys.settrace(tracer)
        try:
            function(*args)
        finally:
            sys.settrace(None)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return lines, peak


def test_a_page_costs_the_same_in_a_store_ten_times_larger():
    """Counted, not timed: the lines of Python run and the memory taken for a page, first
    and from a cursor in the middle, for every filter (docs/performance.md has the times)."""
    small, large = filled(500), filled(5_000)
    for status in FILTERS:
        for where in (None, 0.5):
            costs = []
            for store, count in ((small, 500), (large, 5_000)):
                before_id = None if where is None else int(count * where)
                page = store.list_tasks(10, status, before_id)
                assert len(page) == 10
                costs.append(cost(store.list_tasks, 10, status, before_id))
            (small_lines, small_bytes), (large_lines, large_bytes) = costs
            assert large_lines <= small_lines + 5, (status, where, costs)
            assert large_bytes <= small_bytes + 1024, (status, where, costs)
