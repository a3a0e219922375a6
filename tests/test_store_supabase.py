"""The store contract against the Supabase store, over real PostgreSQL behind the gateway."""

import pytest

from tests.store_contract import StoreContract
from tests.support.supabase_fixtures import open_store

pytestmark = pytest.mark.live


class TestSupabaseStore(StoreContract):
    @pytest.fixture
    def store(self, supabase_db):
        with open_store(supabase_db) as store:
            yield store
