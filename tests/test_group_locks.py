"""The concurrency groups' locks (app/store/groups.py), written once and run against the
in-process backend and the Supabase one (over real PostgreSQL behind the gateway); then what
only the Supabase one does: waiting tasks of other processes, stale locks of ended tasks."""

from __future__ import annotations

import threading

import pytest

from app.store import MemoryStore, TaskStatus
from tests.support.supabase_fixtures import open_store


class GroupLocksContract:
    """Each backend provides ``store`` (a fresh store) whose ``group_locks()`` is tested."""

    @pytest.fixture
    def locks(self, store):
        return store.group_locks()

    @staticmethod
    def task(store, group="deploy-api"):
        return store.create_task("deploy", None, "dev", {"concurrency_group": group}).id

    def test_the_first_task_takes_a_free_group(self, store, locks):
        first = self.task(store)
        assert locks.holder("deploy-api") is None
        assert locks.acquire("deploy-api", first) is None
        assert locks.holder("deploy-api") == first
        assert locks.acquire("deploy-api", first) is None  # twice is harmless

    def test_a_second_task_waits_for_the_holder(self, store, locks):
        first, second = self.task(store), self.task(store)
        locks.acquire("deploy-api", first)
        assert locks.acquire("deploy-api", second) == first
        assert locks.holder("deploy-api") == first
        store.mark_running(first)
        store.finish(first, TaskStatus.DONE, {})
        locks.release("deploy-api", first)
        assert locks.acquire("deploy-api", second) is None
        assert locks.holder("deploy-api") == second

    def test_groups_are_independent(self, store, locks):
        api, web = self.task(store, "deploy-api"), self.task(store, "deploy-web")
        assert locks.acquire("deploy-api", api) is None
        assert locks.acquire("deploy-web", web) is None

    def test_waiting_tasks_take_the_group_in_creation_order(self, store, locks):
        first, second, third = (self.task(store) for _ in range(3))
        locks.acquire("deploy-api", first)
        assert locks.acquire("deploy-api", second) == first
        assert locks.acquire("deploy-api", third) == first
        store.mark_running(first)
        store.finish(first, TaskStatus.DONE, {})
        locks.release("deploy-api", first)
        assert locks.acquire("deploy-api", third) == second  # the older one goes first
        assert locks.acquire("deploy-api", second) is None
        assert locks.acquire("deploy-api", third) == second

    def test_release_by_another_task_changes_nothing(self, store, locks):
        first, second = self.task(store), self.task(store)
        locks.acquire("deploy-api", first)
        locks.release("deploy-api", second)
        locks.release("deploy-web", first)
        assert locks.holder("deploy-api") == first

    def test_a_waiting_task_that_gives_up_lets_the_next_one_in(self, store, locks):
        first, second, third = (self.task(store) for _ in range(3))
        locks.acquire("deploy-api", first)
        locks.acquire("deploy-api", second)
        store.request_cancel(second)  # canceled while it waited
        locks.release("deploy-api", second)
        store.mark_running(first)
        store.finish(first, TaskStatus.DONE, {})
        locks.release("deploy-api", first)
        assert locks.acquire("deploy-api", third) is None

    def test_racing_tasks_get_one_holder(self, store, locks):
        tasks = [self.task(store) for _ in range(6)]
        barrier = threading.Barrier(len(tasks))
        answers = {}

        def take(task_id):
            barrier.wait()
            answers[task_id] = locks.acquire("deploy-api", task_id)

        threads = [threading.Thread(target=take, args=(t,)) for t in tasks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        holders = [t for t, answer in answers.items() if answer is None]
        assert len(answers) == len(tasks) and len(holders) <= 1
        assert locks.holder("deploy-api") in (holders or [None])


class TestMemoryGroupLocks(GroupLocksContract):
    @pytest.fixture
    def store(self):
        return MemoryStore()


@pytest.mark.live
class TestSupabaseGroupLocks(GroupLocksContract):
    @pytest.fixture
    def store(self, supabase_db):
        with open_store(supabase_db) as store:
            yield store


QUIET = dict(lease_seconds=600, orphan_seconds=3600)


@pytest.mark.live
def test_a_queued_task_of_another_process_keeps_its_place(supabase_db):
    with open_store(supabase_db, **QUIET) as a, open_store(supabase_db, **QUIET) as b:
        older = a.create_task("deploy", None, "dev", {"concurrency_group": "g"}).id
        younger = b.create_task("deploy", None, "dev", {"concurrency_group": "g"}).id
        other = b.create_task("deploy", None, "dev", {"concurrency_group": "h"}).id
        # The older task has not asked yet (its process is busy), but it is queued first.
        assert b.group_locks().acquire("g", younger) == older
        assert b.group_locks().acquire("h", other) is None
        assert a.group_locks().acquire("g", older) is None
        assert b.group_locks().holder("g") == older


@pytest.mark.live
def test_a_stale_lock_of_an_ended_task_is_taken_over(supabase_db, postgres):
    with open_store(supabase_db, **QUIET) as a, open_store(supabase_db, **QUIET) as b:
        dead = a.create_task("deploy", None, "dev", {"concurrency_group": "g"}).id
        assert a.group_locks().acquire("g", dead) is None
        a.mark_running(dead)
        waiting = b.create_task("deploy", None, "dev", {"concurrency_group": "g"}).id
        assert b.group_locks().acquire("g", waiting) == dead
        # Its process died without giving the group back; the sweep ended it failed.
        b.finish(dead, TaskStatus.FAILED, {"reason": "orphaned"})
        assert b.group_locks().acquire("g", waiting) is None
        with postgres.connect(supabase_db.dbname) as conn:
            rows = conn.execute("SELECT group_name, task_id FROM va_concurrency_locks"
                                ).fetchall()
        assert rows == [("g", waiting)]
        a.group_locks().release("g", dead)  # the late release of the dead holder: no effect
        assert b.group_locks().holder("g") == waiting


@pytest.mark.live
def test_deleting_a_task_deletes_its_lock(supabase_db, postgres):
    with open_store(supabase_db, **QUIET) as store:
        task = store.create_task("deploy", None, "dev", {"concurrency_group": "g"})
        store.group_locks().acquire("g", task.id)
        store.mark_running(task.id)
        end = store.finish(task.id, TaskStatus.DONE, {})
        from datetime import timedelta
        assert store.purge_finished(end.created_at + timedelta(seconds=1), 10) == 1
        with postgres.connect(supabase_db.dbname) as conn:
            assert conn.execute("SELECT count(*) FROM va_concurrency_locks").fetchone() == (0,)
