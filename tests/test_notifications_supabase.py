"""Notifications over the Supabase store: each delivery is a row of ``va_notifications``,
and with two servers sharing the store a task's ending is delivered once, by the process
that wrote it, and seen through either server."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from app.notify.records import Delivery
from app.notify.supabase import SupabaseDeliveryLog
from app.store import TaskStatus
from tests.support.live import GunicornServer
from tests.support.processes import wait_until
from tests.support.receiver import Receiver
from tests.support.supabase_fixtures import open_store
from tests.test_supabase_live import server_env

NOTIFY_SECRET = "notify-secret-0123456789abcdef"


def test_deliveries_are_rows_of_va_notifications(supabase_db, postgres):
    with open_store(supabase_db) as store:
        task = store.create_task("t", None, "dev")
        log = SupabaseDeliveryLog(supabase_db.url, supabase_db.key, timeout=2)
        try:
            record = Delivery(task_id=task.id, url="https://a.example/x", event="task.ended",
                              created_at=task.created_at, next_attempt_at=task.created_at)
            log.add(record)
            assert record.id >= 1
            record.attempts, record.last_status, record.last_error = 1, 500, "HTTP 500"
            log.update(record)
            [stored] = log.for_task(task.id)
            assert stored.to_dict() == record.to_dict()
            assert log.for_task(task.id + 1) == []
        finally:
            log.close()
        store.mark_running(task.id)
        store.finish(task.id, TaskStatus.DONE, {})
        # Deleting a task deletes its deliveries.
        store.purge_finished(store.get_task(task.id).finished_at.replace(year=2100), 10)
        with postgres.connect(supabase_db.dbname) as conn:
            assert conn.execute("SELECT count(*) FROM va_notifications").fetchone() == (0,)


@pytest.mark.live
@pytest.mark.slow
def test_two_servers_deliver_each_ending_once(supabase_db):
    with Receiver() as receiver:
        env = server_env(supabase_db, OPS_NOTIFY_URLS=receiver.url + "/hook",
                         OPS_NOTIFY_SECRET=NOTIFY_SECRET,
                         OPS_PUBLIC_URL="https://ops.example.com")
        with GunicornServer(env) as runner, GunicornServer(env) as other:
            first = runner.admin.create("one")["id"]
            receiver.answered(1)
            # A second task, created through the other server: it runs there, and its
            # delivery comes after the first one's had every chance to be doubled.
            second = other.admin.create("two")["id"]
            receiver.answered(2)

            def rows(server, task_id):
                answer = server.admin.get(f"/ops/tasks/{task_id}/notifications")
                assert answer.status_code == 200, answer.text
                return answer.json()["notifications"]

            for task_id in (first, second):
                for server in (runner, other):  # the table is shared: either server shows it
                    [row] = wait_until(lambda s=server, t=task_id: (r := rows(s, t))
                                       and r[0]["status"] == "delivered" and r)
                    assert row["attempts"] == 1 and row["last_status"] == 200
            bodies = [json.loads(r.body) for r in receiver.requests]
            assert sorted(b["task"]["id"] for b in bodies) == [first, second]
            for request in receiver.requests:
                digest = hmac.new(NOTIFY_SECRET.encode(), request.body, hashlib.sha256)
                assert request.headers["X-Ops-Signature-256"] == "sha256=" + digest.hexdigest()
            assert NOTIFY_SECRET not in runner.log() + other.log()
