"""Two Supabase stores over one database behave as two processes: shared tasks, cancels
through the task row, one poller per task, orphans ended, the start-up check."""

import threading
import time

import pytest

from app.store import ClaimedElsewhere, StoreUnavailable, TaskFinished, TaskStatus
from tests.support.processes import wait_until
from tests.support.supabase_fixtures import open_store, own_gateway, store_options

pytestmark = pytest.mark.live


def kinds(store, task_id):
    return [e.kind for e in store.events_after(task_id, 0, limit=1000)]


def test_a_task_created_in_one_process_is_read_and_canceled_in_another(supabase_db):
    with open_store(supabase_db) as a, open_store(supabase_db) as b:
        task = a.create_task("Build X", "notes", "dev", {"recipe": "build"})
        seen = b.get_task(task.id)
        assert (seen.title, seen.body, seen.runner, seen.extra) == (
            "Build X", "notes", "dev", {"recipe": "build"})
        assert [t.id for t in b.list_tasks(10)] == [task.id]
        assert b.request_cancel(task.id).status == TaskStatus.CANCELED
        with pytest.raises(TaskFinished):
            a.mark_running(task.id)
        assert kinds(a, task.id) == ["created", "canceled"]


def test_cancel_of_a_running_task_travels_through_the_row(supabase_db):
    with open_store(supabase_db) as a, open_store(supabase_db) as b:
        task = a.create_task("t", None, "dev")
        a.mark_running(task.id)
        assert not a.is_cancel_requested(task.id)
        flagged = b.request_cancel(task.id)
        assert flagged.status == TaskStatus.RUNNING and flagged.cancel_requested
        # the running process notices within one poll interval
        wait_until(lambda: a.is_cancel_requested(task.id), timeout=2)
        a.finish(task.id, TaskStatus.CANCELED, {"reason": "canceled by an admin"})
        # another process's reads may lag by one poll interval
        final = wait_until(lambda: (t := b.get_task(task.id)).status.is_terminal and t, 2)
        assert final.status == TaskStatus.CANCELED and final.cancel_requested  # for good
        with pytest.raises(TaskFinished):
            b.request_cancel(task.id)


def test_a_cancel_answers_with_its_own_flag_despite_a_read_in_flight(supabase_db):
    """A read of the task that began before the cancel (a stream opening) and ends after it
    neither answers the cancel nor replaces the fresher task in the cache."""
    with open_store(supabase_db) as runner, open_store(supabase_db) as api:
        task = runner.create_task("t", None, "dev")
        runner.mark_running(task.id)
        read_task, stale_read, release = api._read_task, threading.Event(), threading.Event()

        def slow_first_read(task_id):
            found = read_task(task_id)
            if not stale_read.is_set():
                stale_read.set()
                release.wait(30)
            return found

        api._read_task = slow_first_read
        opening = threading.Thread(target=api.get_task, args=(task.id,))
        opening.start()
        assert stale_read.wait(30)  # it read the task as running, not yet flagged
        answered = api.request_cancel(task.id)
        release.set()
        opening.join(30)
        assert answered.status == TaskStatus.RUNNING and answered.cancel_requested
        assert api.get_task(task.id).cancel_requested


def test_queued_cancel_and_start_race_has_one_winner(supabase_db):
    with open_store(supabase_db) as a, open_store(supabase_db) as b:
        for _ in range(10):
            task = a.create_task("race", None, "dev")
            barrier = threading.Barrier(2)
            outcome = {}

            def start(task=task, barrier=barrier, outcome=outcome):
                barrier.wait()
                try:
                    a.mark_running(task.id)
                    outcome["start"] = True
                except TaskFinished:
                    outcome["start"] = False

            starter = threading.Thread(target=start)
            starter.start()
            barrier.wait()
            canceled = b.request_cancel(task.id)
            starter.join()
            if outcome["start"]:
                assert canceled.status == TaskStatus.RUNNING and canceled.cancel_requested
                a.finish(task.id, TaskStatus.CANCELED, {"reason": "canceled by an admin"})
                assert kinds(a, task.id) == ["created", "status", "canceled"]
            else:
                assert canceled.status == TaskStatus.CANCELED
                assert kinds(a, task.id) == ["created", "canceled"]


def _count_event_polls(gateway, store, task_id, subscribers: int, seconds: float) -> int:
    """Requests for the task's events while ``subscribers`` threads wait on it."""
    gateway.reset_counts()
    stop = threading.Event()
    got = []

    def follow():
        last = 0
        while not stop.is_set():
            events = store.wait_events(task_id, last, timeout=0.2)
            if events:
                got.append(len(events))
                last = events[-1].id

    threads = [threading.Thread(target=follow) for _ in range(subscribers)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)  # the measurement window itself, not a wait for a result
    stop.set()
    for thread in threads:
        thread.join()
    assert got, "the subscribers saw no event"
    return gateway.counts().get("GET va_task_events", 0)


def test_requests_do_not_grow_with_subscribers(supabase_db):
    with open_store(supabase_db, poll_seconds=0.1) as store:
        task = store.create_task("watched", None, "dev")
        one = _count_event_polls(supabase_db, store, task.id, 1, 1.0)
        fifty = _count_event_polls(supabase_db, store, task.id, 50, 1.0)
    # one poll per 0.1 s either way (about 10), plus the first replay of each
    assert one <= 15, one
    assert fifty <= one + 5, (one, fifty)


def test_own_writes_reach_own_streams_before_the_next_poll(supabase_db):
    """The writer's process nudges its poller; another process waits for its own poll."""
    with open_store(supabase_db, poll_seconds=8) as writer, \
            open_store(supabase_db, poll_seconds=8) as other:  # a nudged poll: 4 s on
        task = writer.create_task("t", None, "dev")
        status = writer.mark_running(task.id)
        after = writer.events_after(task.id, 0)[-1].id
        got = {}

        def follow(name, store):
            got[name] = store.wait_events(task.id, after, timeout=20)

        followers = [threading.Thread(target=follow, args=(name, store))
                     for name, store in (("writer", writer), ("other", other))]
        for thread in followers:
            thread.start()
        # Both pollers have made their first poll (found nothing) once each holds a waiter.
        wait_until(lambda: len(writer._hub) == 1 and len(other._hub) == 1,
                   message="both pollers")
        wait_until(lambda: all(p.polls for h in (writer._hub, other._hub)
                               for p in h._feeds.values()), message="the first reads")
        writer.append_event(task.id, "tick", {"n": 1})
        followers[0].join(6)  # before the writer's own next poll, 8 s after its first
        assert [e.kind for e in got.get("writer", [])] == ["tick"], status
        assert "other" not in got  # a poll every 8 s: it is still waiting
        other.close()
        followers[1].join(5)


def test_wait_events_serves_every_subscriber_in_order(supabase_db):
    with open_store(supabase_db) as writer_store, open_store(supabase_db) as reader:
        task = writer_store.create_task("t", None, "dev")
        writer_store.mark_running(task.id)
        results = [[] for _ in range(20)]

        def follow(out):
            last = 0
            while True:
                for event in reader.wait_events(task.id, last, timeout=5):
                    out.append(event)
                    last = event.id
                if out and out[-1].kind == "done":
                    return

        threads = [threading.Thread(target=follow, args=(out,)) for out in results]
        for thread in threads:
            thread.start()
        for n in range(30):
            writer_store.append_event(task.id, "tick", {"n": n})
        writer_store.finish(task.id, TaskStatus.DONE, {})
        for thread in threads:
            thread.join(10)
        expected = kinds(writer_store, task.id)
        assert expected[-1] == "done" and len(expected) == 33
        for out in results:
            assert [e.kind for e in out] == expected


def test_orphans_end_failed_and_live_tasks_do_not(supabase_db):
    with open_store(supabase_db) as survivor:
        alive = survivor.create_task("alive", None, "dev")
        survivor.mark_running(alive.id)
        with open_store(supabase_db) as dying:
            queued = dying.create_task("queued orphan", None, "dev")
            running = dying.create_task("running orphan", None, "dev")
            dying.mark_running(running.id)
            dying.append_event(running.id, "tick", {"n": 1})
        # `dying` is gone without ending its tasks, as after kill -9
        started = time.monotonic()
        wait_until(lambda: survivor.get_task(running.id).status == TaskStatus.FAILED,
                   timeout=10)
        assert time.monotonic() - started >= 1.5 * 0.9  # not before the orphan delay
        # A queued task is nobody's: it waits in the shared queue for the next claimer.
        assert survivor.get_task(queued.id).status == TaskStatus.QUEUED
        listed, total = survivor.claimable(10)
        assert [t.id for t in listed] == [queued.id] and total == 1
        assert listed[0].title == "queued orphan" and listed[0].runner == "dev"
        assert survivor.mark_running(queued.id, "survivor").worker == "survivor"
        assert kinds(survivor, running.id) == ["created", "status", "tick", "failed"]
        failed = survivor.get_task(running.id)
        assert "orphaned" in failed.error and failed.finished_at is not None
        # the survivor's own task renewed its lease all along
        assert survivor.get_task(alive.id).status == TaskStatus.RUNNING
        with open_store(supabase_db) as other:
            time.sleep(2.5)  # longer than the orphan delay: `alive` must survive it
            assert other.get_task(alive.id).status == TaskStatus.RUNNING


def test_outage_buffers_events_in_order_and_writes_them_once(postgres):
    with own_gateway(postgres) as gateway, open_store(gateway) as store:
        task = store.create_task("t", None, "dev")
        store.mark_running(task.id)
        for n in range(3):
            store.append_event(task.id, "tick", {"n": n})
        gateway.kill()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.get_task(task.id)
        # No hidden retries: the client's would sleep 1 + 2 + 4 s first; half that total
        # tells them apart however loaded the machine.
        assert time.monotonic() - started < 3.5
        with pytest.raises(StoreUnavailable):
            store.wait_events(task.id, 10**6, timeout=1)
        for n in range(3, 8):
            assert store.append_event(task.id, "tick", {"n": n}).id == 0  # buffered
        store.finish(task.id, TaskStatus.DONE, {"ticks": 8})
        gateway.start()
        wait_until(lambda: store._writer.pending == 0, timeout=10)
        events = store.events_after(task.id, 0, limit=1000)
        assert [e.kind for e in events] == ["created", "status"] + ["tick"] * 8 + ["done"]
        assert [e.data["n"] for e in events if e.kind == "tick"] == list(range(8))
        assert store.get_task(task.id).status == TaskStatus.DONE


def test_writes_whose_answer_was_lost_are_not_repeated(supabase_db):
    with open_store(supabase_db) as store:
        task = store.create_task("t", None, "dev")
        store.mark_running(task.id)
        store.append_event(task.id, "tick", {"n": 1})
        supabase_db.lose_answers(1)
        store.append_event(task.id, "tick", {"n": 2})
        supabase_db.lose_answers(1)
        store.finish(task.id, TaskStatus.DONE, {})  # claims the end: no TaskFinished for it
        wait_until(lambda: store._writer.pending == 0, timeout=5)
        assert kinds(store, task.id) == ["created", "status", "tick", "tick", "done"]
        assert store.get_task(task.id).status == TaskStatus.DONE
        assert supabase_db.counts()["lost answers"] == 2


def test_a_claim_whose_answer_was_lost_runs_nowhere_and_ends_as_an_orphan(supabase_db):
    with open_store(supabase_db) as store:
        task = store.create_task("t", None, "dev")
        supabase_db.lose_answers(1)  # the claim commits, its answer is lost
        # Any process's claim could have won it: this one does not run it...
        with pytest.raises(ClaimedElsewhere):
            store.mark_running(task.id, "me")
        with pytest.raises(ClaimedElsewhere):  # ...nor does anyone else
            store.mark_running(task.id, "another")
        # ...and, run by nobody, it ends as an orphan does, saying so.
        ended = wait_until(lambda: (t := store.get_task(task.id)).status.is_terminal and t,
                           timeout=10)
        assert ended.status == TaskStatus.FAILED and "orphaned" in ended.error
        assert kinds(store, task.id) == ["created", "failed"]


def test_outbox_is_bounded(postgres):
    with own_gateway(postgres) as gateway, open_store(gateway, outbox_events=3) as store:
        task = store.create_task("t", None, "dev")
        store.mark_running(task.id)
        gateway.kill()
        for n in range(3):
            store.append_event(task.id, "tick", {"n": n})
        with pytest.raises(StoreUnavailable, match="waiting to be written"):
            store.append_event(task.id, "tick", {"n": 3})
        store.finish(task.id, TaskStatus.FAILED, {"reason": "outbox full"})  # always kept
        gateway.start()
        wait_until(lambda: store._writer.pending == 0, timeout=10)
        assert kinds(store, task.id) == ["created", "status", "tick", "tick", "tick", "failed"]


def test_check_names_what_is_missing(postgres):
    with own_gateway(postgres, migrate=False) as gateway, open_store(gateway) as store:
        with pytest.raises(StoreUnavailable, match=r"no table public\.va_tasks: apply "
                                                   r"supabase/migrations/"):
            store.check()
        postgres.migrate(gateway.dbname)
        store.check()
        with postgres.connect(gateway.dbname) as conn:
            conn.execute("ALTER TABLE va_task_events DROP COLUMN kind")
        with pytest.raises(StoreUnavailable, match=r"va_task_events has no column kind:"):
            store.check()


def test_check_refuses_a_wrong_key(supabase_db):
    with open_store(supabase_db) as good:
        good.check()
    from app.store.supabase import SupabaseStore
    store = SupabaseStore(supabase_db.url, "not-the-key", **store_options())
    try:
        with pytest.raises(StoreUnavailable, match="refused SUPABASE_SERVICE_ROLE_KEY") as info:
            store.check()
        assert "not-the-key" not in str(info.value)
    finally:
        store.close()
