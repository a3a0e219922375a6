"""The store contract against the in-process store."""

import pytest

from app.store import MemoryStore
from tests.store_contract import StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self):
        store = MemoryStore()
        yield store
        store.close()


def test_close_wakes_waiters():
    import threading

    store = MemoryStore()
    task = store.create_task("t", None, "dev")
    last = store.events_after(task.id, 0)[-1].id
    result = {}
    waiter = threading.Thread(target=lambda: result.update(got=store.wait_events(task.id, last,
                                                                               timeout=60)))
    waiter.start()
    store.close()
    waiter.join(10)
    assert not waiter.is_alive() and result["got"] == []


def test_one_append_wakes_every_waiter_of_the_task_only():
    import threading

    store = MemoryStore()
    task, other = store.create_task("t", None, "dev"), store.create_task("o", None, "dev")
    last = {t.id: store.events_after(t.id, 0)[-1].id for t in (task, other)}
    got = {}

    def wait(name, task_id):
        got[name] = store.wait_events(task_id, last[task_id], timeout=60)

    waiters = [threading.Thread(target=wait, args=(n, task.id)) for n in range(20)]
    bystander = threading.Thread(target=wait, args=("other", other.id))
    for thread in [*waiters, bystander]:
        thread.start()
    event = store.append_event(task.id, "tick", {"n": 1})
    for thread in waiters:
        thread.join(10)
    assert [got[n] for n in range(20)] == [[event]] * 20
    assert bystander.is_alive()  # nothing arrived on its task
    store.close()
    bystander.join(10)
    assert got["other"] == []


def test_a_wait_after_an_append_waits_for_the_next_one():
    import time

    store = MemoryStore()
    task = store.create_task("t", None, "dev")
    event = store.append_event(task.id, "tick", {"n": 1})
    started = time.monotonic()
    assert store.wait_events(task.id, event.id, timeout=0.2) == []
    assert time.monotonic() - started >= 0.15
