"""The store contract against the in-process store."""

import pytest

from app.store import MemoryStore
from store_contract import StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self):
        store = MemoryStore()
        yield store
        store.close()

    def test_ids_start_at_one(self, store):
        assert store.create_task("first", None, "dev").id == 1


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
