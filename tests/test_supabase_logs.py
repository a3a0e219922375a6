"""Task output on the Supabase store: a batch of events is one bulk insert, in order, and
survives outages and lost answers without gaps or repeats; a flood costs few requests."""

import pytest

from app import create_app
from app.store import TaskStatus
from tests.support.api import Admin, make_settings
from tests.support.processes import wait_until
from tests.support.runners import Tasks, log_lines
from tests.support.supabase_fixtures import open_store, own_gateway
from tests.test_recipe_runner import BOOK, numbered

pytestmark = pytest.mark.live


def logs(first: int, count: int, per_event: int = 10) -> list[tuple[str, dict]]:
    return [("log", {"stream": "stdout", "first_line": n,
                     "lines": [f"line {m}" for m in range(n, n + per_event)]})
            for n in range(first, first + count * per_event, per_event)]


def lines_of(store, task_id) -> list[str]:
    events = store.events_after(task_id, 0, limit=10_000)
    return log_lines([{"kind": e.kind, "data": e.data} for e in events])


def test_a_batch_is_one_insert_with_ids_in_order(supabase_db):
    with open_store(supabase_db) as store:
        task = store.create_task("t", None, "recipe")
        store.mark_running(task.id)
        supabase_db.reset_counts()
        stored = store.append_events(task.id, logs(1, 30))
        assert supabase_db.counts()["POST va_task_events"] == 1
        ids = [e.id for e in stored]
        assert ids == sorted(ids) and len(set(ids)) == 30
        assert [e.data["first_line"] for e in stored] == list(range(1, 301, 10))
        assert lines_of(store, task.id) == [f"line {m}" for m in range(1, 301)]


def test_a_backlog_goes_out_in_bulk_and_in_order(postgres):
    with own_gateway(postgres) as gateway, open_store(gateway) as store:
        task = store.create_task("t", None, "recipe")
        store.mark_running(task.id)
        store.append_events(task.id, logs(1, 2))
        gateway.kill()
        for batch in range(5):  # buffered while Supabase is away
            events = store.append_events(task.id, logs(21 + batch * 40, 4))
            assert [e.id for e in events] == [0] * 4
        store.finish(task.id, TaskStatus.DONE, {})
        gateway.start()  # a new process: its counts start from zero
        wait_until(lambda: store._writer.pending == 0, timeout=10)
        # The 20 buffered events in one insert, then the terminal event and the status.
        assert gateway.counts()["POST va_task_events"] == 2
        assert lines_of(store, task.id) == [f"line {m}" for m in range(1, 221)]
        assert store.get_task(task.id).status == TaskStatus.DONE


def test_a_bulk_insert_whose_answer_was_lost_is_not_repeated(supabase_db):
    with open_store(supabase_db) as store:
        task = store.create_task("t", None, "recipe")
        store.mark_running(task.id)
        supabase_db.lose_answers(1)  # the insert commits, its answer is lost
        assert [e.id for e in store.append_events(task.id, logs(1, 3))] == [0] * 3
        store.append_events(task.id, logs(31, 3))
        supabase_db.lose_answers(1)  # and once more, while the backlog is written
        store.append_events(task.id, logs(61, 3))
        store.finish(task.id, TaskStatus.DONE, {})
        wait_until(lambda: store._writer.pending == 0, timeout=10)
        assert lines_of(store, task.id) == [f"line {m}" for m in range(1, 91)]
        assert supabase_db.counts()["lost answers"] == 2


@pytest.fixture
def supabase_tasks(supabase_db):
    settings = make_settings(supabase_url=supabase_db.url, supabase_key=supabase_db.key,
                             dev_mode=False, recipes=BOOK, supabase_poll_seconds=0.05)
    app = create_app(settings)
    yield Tasks(Admin(app.test_client()), app)
    app.extensions["services"].executor.shutdown(grace=5)
    app.extensions["services"].store.close()


def test_a_flood_is_stored_whole_at_a_request_per_hundreds_of_lines(supabase_tasks,
                                                                    supabase_db):
    tasks = supabase_tasks
    task_id = tasks.create(recipe="numbered", params={"count": "100000"})
    assert tasks.wait_finished(task_id, timeout=120)["status"] == "done"
    assert tasks.lines(task_id) == numbered(100_000)
    writes = supabase_db.counts()["POST va_task_events"]
    assert writes <= 100_001 / 50, writes
    text = tasks.admin.get(f"/ops/tasks/{task_id}/log")
    assert text.get_data(as_text=True) == "\n".join(numbered(100_000)) + "\n"
