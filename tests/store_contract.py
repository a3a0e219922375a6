"""The store contract's tests, written once; each backend's test module subclasses
:class:`StoreContract` and provides a ``store`` fixture (a fresh, empty store: its ids start
at 1, as in a new database)."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timedelta, timezone

import pytest

from app.store import TERMINAL_KINDS, ClaimedElsewhere, TaskFinished, TaskNotFound, TaskStatus
from app.store.base import canceled_data
from app.store.workers import WorkerInfo


class StoreContract:
    def test_create_queues_a_task_with_its_created_event(self, store):
        task = store.create_task("Build X", "notes\nmore", "dev", {"recipe": "build"})
        assert task.status == TaskStatus.QUEUED
        assert (task.title, task.body, task.runner) == ("Build X", "notes\nmore", "dev")
        again = store.get_task(task.id)
        assert (again.title, again.body, again.runner, again.status) == (
            "Build X", "notes\nmore", "dev", TaskStatus.QUEUED)
        assert again.extra == {"recipe": "build"}
        [created] = store.events_after(task.id, 0)
        assert created.kind == "created" and created.task_id == task.id
        assert created.data["body"] == "notes\nmore"

    def test_ids_start_at_one(self, store):
        assert store.create_task("first", None, "dev").id == 1

    def test_ids_increase(self, store):
        first = store.create_task("a", None, "dev")
        second = store.create_task("b", None, "dev")
        assert second.id > first.id >= 1

    def test_unknown_task(self, store):
        with pytest.raises(TaskNotFound):
            store.get_task(987654)
        with pytest.raises(TaskNotFound):
            store.events_after(987654, 0)

    def test_list_is_newest_first_with_filter_and_cursor(self, store):
        ids = [store.create_task(f"t{n}", None, "dev").id for n in range(5)]
        store.mark_running(ids[1])
        assert [t.id for t in store.list_tasks(10)] == ids[::-1]
        assert [t.id for t in store.list_tasks(2)] == [ids[4], ids[3]]
        assert [t.id for t in store.list_tasks(2, before_id=ids[3])] == [ids[2], ids[1]]
        assert [t.id for t in store.list_tasks(10, status=TaskStatus.RUNNING)] == [ids[1]]
        listed = store.list_tasks(10, status=TaskStatus.RUNNING)[0]
        assert listed.started_at is not None and listed.runner == "dev"

    def test_lifecycle_events_and_derived_fields(self, store):
        task = store.create_task("t", "b", "dev")
        running = store.mark_running(task.id)
        assert running.status == TaskStatus.RUNNING and running.started_at is not None
        tick = store.append_event(task.id, "tick", {"n": 1})
        end = store.finish(task.id, TaskStatus.FAILED, {"reason": "exit code 2"})
        assert end.kind == "failed" and end.id > tick.id
        final = store.get_task(task.id)
        assert final.status == TaskStatus.FAILED
        assert final.error == "exit code 2" and final.finished_at is not None
        assert [e.kind for e in store.events_after(task.id, 0)] == [
            "created", "status", "tick", "failed"]

    def test_exactly_one_terminal_event(self, store):
        task = store.create_task("t", None, "dev")
        store.mark_running(task.id)
        store.finish(task.id, TaskStatus.DONE, {})
        with pytest.raises(TaskFinished) as info:
            store.finish(task.id, TaskStatus.FAILED, {"reason": "late"})
        assert info.value.status == TaskStatus.DONE
        kinds = [e.kind for e in store.events_after(task.id, 0)]
        assert sum(k in TERMINAL_KINDS for k in kinds) == 1

    def test_terminal_kinds_only_through_finish(self, store):
        task = store.create_task("t", None, "dev")
        with pytest.raises(ValueError):
            store.append_event(task.id, "done", {})

    def test_cancel_queued_ends_it_and_mark_running_loses(self, store):
        task = store.create_task("t", None, "dev")
        canceled = store.request_cancel(task.id)
        assert canceled.status == TaskStatus.CANCELED
        with pytest.raises(TaskFinished):
            store.mark_running(task.id)
        assert [e.kind for e in store.events_after(task.id, 0)] == ["created", "canceled"]
        with pytest.raises(TaskFinished):
            store.request_cancel(task.id)

    def test_endings_written_by_the_store_are_reported_once(self, store):
        heard = []
        store.on_task_ended(lambda *ending: heard.append(ending))
        queued = store.create_task("queued", None, "dev")
        store.request_cancel(queued.id)
        [(task_id, status, data, finished_at)] = heard
        assert (task_id, status) == (queued.id, TaskStatus.CANCELED)
        assert data["reason"] == "canceled before it started"
        assert finished_at == store.get_task(queued.id).finished_at
        with pytest.raises(TaskFinished):
            store.request_cancel(queued.id)
        running = store.create_task("running", None, "dev")
        store.mark_running(running.id)
        store.request_cancel(running.id)  # a flag, not an ending
        store.finish(running.id, TaskStatus.CANCELED, {"reason": "canceled by an admin"})
        assert len(heard) == 1  # an ending through finish() is its caller's to tell
        store.on_task_ended(None)

    def test_cancel_running_flags_it(self, store):
        task = store.create_task("t", None, "dev")
        store.mark_running(task.id)
        assert not store.is_cancel_requested(task.id)
        flagged = store.request_cancel(task.id)
        assert flagged.status == TaskStatus.RUNNING and flagged.cancel_requested
        assert store.request_cancel(task.id).cancel_requested  # twice is harmless
        assert store.is_cancel_requested(task.id)
        assert store.get_task(task.id).cancel_requested
        store.finish(task.id, TaskStatus.CANCELED, {"reason": "canceled by an admin"})
        final = store.get_task(task.id)
        assert final.status == TaskStatus.CANCELED and final.cancel_requested
        assert [e.kind for e in store.events_after(task.id, 0)] == [
            "created", "status", "canceled"]

    def test_a_canceled_task_stays_cancel_requested(self, store):
        """Canceled by an admin while running, or before it started: either way a cancel was
        asked for, and the task says so for good; other endings do not."""
        running = store.create_task("running", None, "dev")
        store.mark_running(running.id)
        store.request_cancel(running.id)
        store.finish(running.id, TaskStatus.CANCELED, {"reason": "canceled by an admin"})
        queued = store.create_task("queued", None, "dev")
        answered = store.request_cancel(queued.id)
        assert answered.status == TaskStatus.CANCELED and answered.cancel_requested
        done = store.create_task("done", None, "dev")
        store.mark_running(done.id)
        store.finish(done.id, TaskStatus.DONE, {})
        failed = store.create_task("failed", None, "dev")
        store.mark_running(failed.id)
        store.finish(failed.id, TaskStatus.FAILED, {"reason": "shutdown"})
        for task in (store.get_task(running.id), store.get_task(queued.id)):
            assert task.status == TaskStatus.CANCELED and task.cancel_requested
            assert task.to_dict()["cancel_requested"] is True
        assert not store.get_task(done.id).cancel_requested
        assert not store.get_task(failed.id).cancel_requested
        listed = {t.id: t.cancel_requested for t in store.list_tasks(10, None, None)}
        assert listed == {running.id: True, queued.id: True, done.id: False, failed.id: False}
        canceled = {t.id for t in store.list_tasks(10, TaskStatus.CANCELED, None)
                    if t.cancel_requested}
        assert canceled == {running.id, queued.id}

    def test_events_after_pages_in_order(self, store):
        task = store.create_task("t", None, "dev")
        store.mark_running(task.id)
        for n in range(25):
            store.append_event(task.id, "tick", {"n": n})
        seen, last = [], 0
        while page := store.events_after(task.id, last, limit=7):
            assert len(page) <= 7
            seen.extend(page)
            last = page[-1].id
        assert [e.id for e in seen] == sorted(e.id for e in seen)
        assert [e.data.get("n") for e in seen if e.kind == "tick"] == list(range(25))

    def test_event_fields(self, store):
        task = store.create_task("t", None, "dev")
        event = store.append_event(task.id, "log", {"line": "héllo ✓", "nested": {"a": [1, 2]}})
        [stored] = store.events_after(task.id, event.id - 1)
        assert stored == event
        assert stored.created_at.tzinfo is not None

    def test_wait_returns_at_once_when_events_exist(self, store):
        task = store.create_task("t", None, "dev")
        got = []
        # An hour's timeout: a call that waited for it would still be blocked when the join
        # gives up, however loaded the machine.
        waiter = threading.Thread(
            target=lambda: got.extend(store.wait_events(task.id, 0, timeout=3600)), daemon=True)
        waiter.start()
        waiter.join(30)
        assert not waiter.is_alive(), "wait_events waited although there were events"
        assert [e.kind for e in got] == ["created"]

    def test_wait_times_out_empty(self, store):
        task = store.create_task("t", None, "dev")
        [created] = store.events_after(task.id, 0)
        assert store.wait_events(task.id, created.id, timeout=0.05) == []

    def test_wait_wakes_on_append(self, store):
        task = store.create_task("t", None, "dev")
        [created] = store.events_after(task.id, 0)
        writer = threading.Timer(0.05, store.append_event, (task.id, "tick", {"n": 1}))
        writer.start()
        try:
            got = store.wait_events(task.id, created.id, timeout=30)
        finally:
            writer.join()
        assert [e.kind for e in got] == ["tick"]

    def test_purge_deletes_only_tasks_that_ended_before_the_cutoff(self, store):
        ended = [store.create_task(f"old{n}", None, "dev") for n in range(3)]
        for task in ended:
            store.request_cancel(task.id)
        running = store.create_task("running", None, "dev")
        store.mark_running(running.id)
        queued = store.create_task("queued", None, "dev")
        last_end = store.get_task(ended[-1].id).finished_at
        assert store.purge_finished(ended[0].created_at, limit=10) == 0  # nothing ended yet then
        cutoff = last_end + timedelta(microseconds=1)
        assert store.purge_finished(cutoff, limit=2) == 2  # in batches, oldest first
        assert store.purge_finished(cutoff, limit=2) == 1
        assert store.purge_finished(cutoff, limit=2) == 0
        for task in ended:
            with pytest.raises(TaskNotFound):
                store.get_task(task.id)
        assert store.get_task(running.id).status == TaskStatus.RUNNING
        assert store.get_task(queued.id).status == TaskStatus.QUEUED
        assert [t.id for t in store.list_tasks(10)] == [queued.id, running.id]

    def test_concurrent_writers_keep_every_event(self, store):
        tasks = [store.create_task(f"t{n}", None, "dev") for n in range(4)]
        barrier = threading.Barrier(len(tasks))

        def write(task):
            barrier.wait()
            for n in range(50):
                store.append_event(task.id, "tick", {"n": n})

        threads = [threading.Thread(target=write, args=(t,)) for t in tasks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        all_ids = []
        for task in tasks:
            events = store.events_after(task.id, 0, limit=1000)
            ticks = [e.data["n"] for e in events if e.kind == "tick"]
            assert ticks == list(range(50))
            all_ids.extend(e.id for e in events)
        assert len(all_ids) == len(set(all_ids))

    # -- actors: who created a task, who canceled it ----------------------------------------

    def test_created_by_travels_in_the_created_event(self, store):
        named = store.create_task("named", None, "dev", {"recipe": "build"}, created_by="alice")
        anonymous = store.create_task("anonymous", None, "dev")
        assert named.created_by == "alice" and named.extra == {"recipe": "build"}
        again = store.get_task(named.id)
        assert again.created_by == "alice" and again.extra == {"recipe": "build"}
        assert again.to_dict()["created_by"] == "alice"
        [created] = store.events_after(named.id, 0)
        assert created.data["created_by"] == "alice"
        assert store.get_task(anonymous.id).created_by is None
        [created] = store.events_after(anonymous.id, 0)
        assert "created_by" not in created.data
        assert {t.id: t.created_by for t in store.list_tasks(10)} == {
            named.id: "alice", anonymous.id: None}

    def test_cancel_of_a_queued_task_names_the_actor(self, store):
        task = store.create_task("t", None, "dev", created_by="alice")
        canceled = store.request_cancel(task.id, actor="bob")
        assert canceled.status == TaskStatus.CANCELED and canceled.canceled_by == "bob"
        [_, ended] = store.events_after(task.id, 0)
        assert ended.kind == "canceled" and ended.data["canceled_by"] == "bob"
        final = store.get_task(task.id)
        assert (final.created_by, final.canceled_by) == ("alice", "bob")
        with pytest.raises(TaskFinished):
            store.request_cancel(task.id, actor="carol")
        assert store.get_task(task.id).canceled_by == "bob"

    def test_cancel_requester_of_a_running_task_is_the_first_asker(self, store):
        task = store.create_task("t", None, "dev")
        store.mark_running(task.id)
        assert store.cancel_requester(task.id) is None
        assert store.request_cancel(task.id, actor="bob").cancel_requested
        store.request_cancel(task.id, actor="carol")  # too late to be the one named
        store.request_cancel(task.id)
        assert store.is_cancel_requested(task.id)
        assert store.cancel_requester(task.id) == "bob"
        # The process running it writes the name into the terminal event.
        store.finish(task.id, TaskStatus.CANCELED, canceled_data("canceled by bob", "bob"))
        final = store.get_task(task.id)
        assert final.status == TaskStatus.CANCELED and final.canceled_by == "bob"
        assert final.to_dict()["canceled_by"] == "bob"
        assert store.events_after(task.id, 0)[-1].data == {"reason": "canceled by bob",
                                                          "canceled_by": "bob"}

    def test_an_anonymous_cancel_names_nobody(self, store):
        task = store.create_task("t", None, "dev")
        store.mark_running(task.id)
        store.request_cancel(task.id)
        assert store.is_cancel_requested(task.id)
        assert store.cancel_requester(task.id) is None
        store.finish(task.id, TaskStatus.CANCELED, canceled_data("canceled by an admin", None))
        assert store.get_task(task.id).canceled_by is None
        queued = store.create_task("q", None, "dev")
        assert store.request_cancel(queued.id).canceled_by is None
        assert "canceled_by" not in store.events_after(queued.id, 0)[-1].data

    def test_cancel_of_an_unknown_task_by_an_actor(self, store):
        with pytest.raises(TaskNotFound):
            store.request_cancel(987654, actor="bob")

    def test_list_by_creator_pages_newest_first(self, store):
        owners = ["alice", "bob", None, "alice", "alice", "bob", "alice", None, "alice"]
        ids = [store.create_task(f"t{n}", None, "dev", created_by=owner).id
               for n, owner in enumerate(owners)]
        alices = [i for i, owner in zip(ids, owners) if owner == "alice"][::-1]
        listed = store.list_tasks(10, created_by="alice")
        assert [t.id for t in listed] == alices
        assert {t.created_by for t in listed} == {"alice"}
        assert [t.id for t in store.list_tasks(10, created_by="bob")] == [ids[5], ids[1]]
        assert store.list_tasks(10, created_by="nobody") == []
        seen, cursor = [], None
        while page := store.list_tasks(2, before_id=cursor, created_by="alice"):
            assert len(page) <= 2
            seen.extend(t.id for t in page)
            cursor = page[-1].id
        assert seen == alices
        assert [t.id for t in store.list_tasks(10, before_id=alices[1], created_by="alice")] \
            == alices[2:]

    def test_list_by_creator_with_a_status_filter(self, store):
        owners = ["alice", "bob", "alice", "alice", "bob", "alice", "alice", "alice"]
        ids = [store.create_task(f"t{n}", None, "dev", created_by=owner).id
               for n, owner in enumerate(owners)]
        running = [ids[0], ids[1], ids[3], ids[7]]  # alice's: 0, 3, 7
        for task_id in running:
            store.mark_running(task_id)
        store.request_cancel(ids[5], actor="bob")  # alice's, canceled while queued
        listed = store.list_tasks(10, status=TaskStatus.RUNNING, created_by="alice")
        assert [t.id for t in listed] == [ids[7], ids[3], ids[0]]
        assert all(t.status == TaskStatus.RUNNING and t.started_at for t in listed)
        assert [t.id for t in store.list_tasks(2, status=TaskStatus.RUNNING,
                                               created_by="alice")] == [ids[7], ids[3]]
        assert [t.id for t in store.list_tasks(2, status=TaskStatus.RUNNING, before_id=ids[3],
                                               created_by="alice")] == [ids[0]]
        assert [t.id for t in store.list_tasks(10, status=TaskStatus.QUEUED,
                                               created_by="alice")] == [ids[6], ids[2]]
        [canceled] = store.list_tasks(10, status=TaskStatus.CANCELED, created_by="alice")
        assert canceled.id == ids[5] and canceled.canceled_by == "bob"
        assert store.list_tasks(10, status=TaskStatus.DONE, created_by="alice") == []
        assert [t.id for t in store.list_tasks(10, status=TaskStatus.RUNNING,
                                               created_by="bob")] == [ids[1]]

    def test_claimable_lists_the_oldest_queued_tasks_whole_and_counts_them_all(self, store):
        ids = [store.create_task(f"t{n}", None, "dev", {"recipe": "build"},
                                 created_by="otto").id for n in range(4)]
        store.mark_running(ids[0])
        listed, total = store.claimable(2)
        assert [t.id for t in listed] == ids[1:3] and total == 3
        assert (listed[0].title, listed[0].runner, listed[0].created_by) == ("t1", "dev", "otto")
        assert listed[0].extra == {"recipe": "build"}
        later, total = store.claimable(10, after_id=ids[2])
        assert [t.id for t in later] == [ids[3]]
        assert store.claimable(0)[0] == []

    def test_a_task_is_claimed_once_naming_its_worker(self, store):
        task = store.create_task("t", None, "dev")
        running = store.mark_running(task.id, "web-1:42:abc")
        assert running.worker == "web-1:42:abc" == store.get_task(task.id).worker
        with pytest.raises(ClaimedElsewhere):
            store.mark_running(task.id, "web-2:43:def")
        status = [e for e in store.events_after(task.id, 0) if e.kind == "status"]
        assert [e.data for e in status] == [{"status": "running", "worker": "web-1:42:abc"}]
        assert store.claimable(10) == ([], 0)

    def test_the_worker_registry_keeps_each_process_row(self, store):
        registry = store.worker_registry()
        me = WorkerInfo(id="h:1:a", host="h", pid=1, pools=("deploy",), runners=("recipe",),
                        recipes=("deploy",), workers=4, running=1)
        registry.advertise(me)
        registry.advertise(dataclasses.replace(me, running=2))
        [row] = [r for r in registry.workers() if r.id == "h:1:a"]
        assert (row.pools, row.runners, row.recipes, row.workers, row.running) == (
            ("deploy",), ("recipe",), ("deploy",), 4, 2)
        now = datetime.now(timezone.utc)
        assert row.is_live(now, 60) and row.started_at <= row.last_seen
        assert row.lacks("recipe", "deploy", "deploy") is None
        assert row.lacks("recipe", "deploy", "default") == "serves the pool default"
        assert row.lacks("llm", None, "default") == "runs llm tasks"
        registry.withdraw("h:1:a")
        [row] = [r for r in registry.workers() if r.id == "h:1:a"]
        assert row.stopped_at is not None and not row.is_live(now, 60)
