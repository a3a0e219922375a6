"""The store contract against the Supabase store, over real PostgreSQL behind the gateway."""

import pytest

from store_contract import StoreContract
from supabase_fixtures import open_store

pytestmark = pytest.mark.live


class TestSupabaseStore(StoreContract):
    @pytest.fixture
    def store(self, supabase_db):
        with open_store(supabase_db) as store:
            yield store
