"""The idempotency keys' contract against the in-process keys and ``va_idempotency_keys``
(over the gateway), and what the table itself keeps."""

from __future__ import annotations

import itertools

import pytest

from app.store.idempotency import MemoryIdempotencyKeys
from app.store.supabase.idempotency import SupabaseIdempotencyKeys
from tests.idempotency_contract import IdempotencyKeysContract


class TestMemoryIdempotencyKeys(IdempotencyKeysContract):
    @pytest.fixture
    def make_keys(self):
        made = []
        yield lambda clock: made.append(MemoryIdempotencyKeys(clock=clock.now)) or made[-1]
        for keys in made:
            keys.close()

    @pytest.fixture
    def new_task(self):
        return itertools.count(1).__next__


def insert_task(postgres, gateway) -> int:
    with postgres.connect(gateway.dbname) as conn:
        return conn.execute("INSERT INTO va_tasks (title) VALUES ('t') RETURNING id").fetchone()[0]


@pytest.mark.live
class TestSupabaseIdempotencyKeys(IdempotencyKeysContract):
    @pytest.fixture
    def make_keys(self, supabase_db):
        made = []

        def make(clock):
            made.append(SupabaseIdempotencyKeys(supabase_db.url, supabase_db.key, timeout=2.0,
                                                poll_seconds=0.02, clock=clock.now))
            return made[-1]

        yield make
        for keys in made:
            keys.close()

    @pytest.fixture
    def new_task(self, postgres, supabase_db):
        return lambda: insert_task(postgres, supabase_db)


@pytest.mark.live
def test_deleting_a_task_deletes_its_keys(postgres, supabase_db, clock):
    keys = SupabaseIdempotencyKeys(supabase_db.url, supabase_db.key, timeout=2.0,
                                   clock=clock.now)
    try:
        task_id = insert_task(postgres, supabase_db)
        keys.claim("alice", "k", "fp")
        keys.complete("alice", "k", task_id)
        with postgres.connect(supabase_db.dbname) as conn:
            conn.execute("DELETE FROM va_tasks WHERE id = %s", (task_id,))  # retention
        assert keys.lookup("alice", "k") is None
        assert keys.claim("alice", "k", "fp") is None
    finally:
        keys.close()


@pytest.mark.live
def test_a_claim_is_one_insert_and_a_held_key_one_more_read(supabase_db, clock):
    keys = SupabaseIdempotencyKeys(supabase_db.url, supabase_db.key, timeout=2.0,
                                   clock=clock.now)
    try:
        supabase_db.reset_counts()
        keys.claim("alice", "k", "fp")
        assert supabase_db.counts() == {"POST va_idempotency_keys": 1}
        keys.claim("alice", "k", "fp")
        assert supabase_db.counts() == {"POST va_idempotency_keys": 2,
                                        "GET va_idempotency_keys": 1}
    finally:
        keys.close()
