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
