"""The store contract against the Supabase store, over real PostgreSQL behind the gateway,
and what only it does: the requests a creator's list costs, a cancel's actor between two
stores, the start-up check naming each migration not applied yet."""

import re
from datetime import timedelta

import pytest

from app.store import StoreUnavailable, TaskStatus
from app.store.base import canceled_data
from tests.store_contract import StoreContract
from tests.support.processes import wait_until
from tests.support.supabase_fixtures import open_store, own_gateway

pytestmark = pytest.mark.live


class TestSupabaseStore(StoreContract):
    @pytest.fixture
    def store(self, supabase_db):
        with open_store(supabase_db) as store:
            yield store


# No lease or orphan sweep during a count of requests.
QUIET = dict(lease_seconds=600, orphan_seconds=3600)


def test_list_by_creator_costs_three_reads(supabase_db):
    with open_store(supabase_db, **QUIET) as store:
        for n in range(6):
            store.create_task(f"t{n}", None, "dev", created_by="alice" if n % 2 else "bob")
        supabase_db.reset_counts()
        listed = store.list_tasks(2, created_by="alice")
        assert [t.id for t in listed] == [6, 4]
        counts = supabase_db.counts()
        # the creator's created events, their rows, their lifecycle events
        assert counts == {"GET va_task_events": 2, "GET va_tasks": 1}, counts


def test_list_by_creator_with_a_status_filter_reads_page_after_page(supabase_db,
                                                                    monkeypatch):
    from app.store.supabase import store as module

    monkeypatch.setattr(module, "CREATOR_PAGE", 2)
    with open_store(supabase_db, **QUIET) as store:
        ids = [store.create_task(f"t{n}", None, "dev", created_by="alice").id for n in range(9)]
        for task_id in (ids[0], ids[1]):
            store.mark_running(task_id)
        store.create_task("other", None, "dev", created_by="bob")
        supabase_db.reset_counts()
        listed = store.list_tasks(2, status=TaskStatus.RUNNING, created_by="alice")
        assert [t.id for t in listed] == [ids[1], ids[0]]
        counts = supabase_db.counts()
        # five pages of two created events (the last one short), each with a read of rows
        assert counts["GET va_tasks"] == 5 and counts["GET va_task_events"] == 5 + 1, counts


def test_a_cancel_names_its_actor_across_processes(supabase_db, postgres):
    with open_store(supabase_db) as runner, open_store(supabase_db) as api:
        task = runner.create_task("t", None, "dev", created_by="alice")
        runner.mark_running(task.id)
        assert api.request_cancel(task.id, actor="bob").cancel_requested
        api.request_cancel(task.id, actor="carol")
        wait_until(lambda: runner.is_cancel_requested(task.id), timeout=5)
        assert runner.cancel_requester(task.id) == "bob"
        runner.finish(task.id, TaskStatus.CANCELED, canceled_data("canceled by bob", "bob"))
        final = wait_until(lambda: (t := api.get_task(task.id)).status.is_terminal and t, 5)
        assert (final.created_by, final.canceled_by) == ("alice", "bob")
        # retention deletes the requester with its task
        assert runner.purge_finished(final.finished_at + timedelta(seconds=1), 10) == 1
        with postgres.connect(supabase_db.dbname) as conn:
            assert conn.execute("SELECT count(*) FROM va_task_cancels").fetchone() == (0,)


def test_check_names_each_migration_not_yet_applied(postgres):
    """Applied in name order, one at a time: until the last, the check names the first table
    missing and the migration that creates it (the next one)."""
    from app.store.supabase.schema import TABLES
    from tests.support.postgres import MIGRATIONS

    with own_gateway(postgres, migrate=False) as gateway, open_store(gateway) as store:
        for applied, migration in enumerate(MIGRATIONS):
            with postgres.connect(gateway.dbname) as conn:
                conn.execute(migration.read_text())
            if applied + 1 == len(MIGRATIONS):
                break
            following = f"supabase/migrations/{MIGRATIONS[applied + 1].name}"
            table = next(t for t, _, made_by in TABLES if made_by == following)
            with pytest.raises(StoreUnavailable, match=rf"no table public\.{table}: apply "
                                                       rf"{re.escape(following)}"):
                store.check()
        store.check()
        with postgres.connect(gateway.dbname) as conn:
            conn.execute("ALTER TABLE va_audit DROP COLUMN outcome")
        with pytest.raises(StoreUnavailable, match=r"va_audit has no column outcome: apply "
                                                   r"supabase/migrations/20261202000000"):
            store.check()


def test_a_create_sends_two_requests(supabase_db):
    """The row, then its ``created`` event: nothing else, counted by the gateway."""
    with open_store(supabase_db, **QUIET) as store:
        store.create_task("warm-up", None, "dev")
        # The first lease round's sweep (two reads) comes one poll after the first use;
        # the next one is QUIET's ten minutes away.
        wait_until(lambda: supabase_db.counts().get("GET va_tasks"), timeout=10,
                   message="the first sweep")
        supabase_db.reset_counts()
        task = store.create_task("t", "body", "dev", {"recipe": "r"}, created_by="alice")
        assert supabase_db.counts() == {"POST va_tasks": 1, "POST va_task_events": 1}
        assert (task.status, task.created_by) == (TaskStatus.QUEUED, "alice")
