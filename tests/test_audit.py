"""The audit trail: who did what, recorded for every state-changing call, refusals
aggregated, read through ``/ops/audit``; actors on tasks and their lifecycle events."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.audit import AuditQuery, AuditTrail, MemoryAuditLog
from app.store import isoformat
from tests.support.api import ADMIN, make_settings
from tests.support.credentials import headers_of, write_credentials

ADMIN_HEADERS = {"X-Admin-Token": ADMIN}


@pytest.fixture
def app(make_app, tmp_path):
    path = write_credentials(tmp_path / "credentials.toml")
    # Slow ticks: the tasks stay running until canceled.
    return make_app(make_settings(tokens_file=str(path), dev_tick_seconds=60))


@pytest.fixture
def client(app):
    return app.test_client()


def audit(client, **filters):
    response = client.get("/ops/audit", query_string=filters, headers=ADMIN_HEADERS)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_changes_name_their_actor_in_tasks_events_and_the_audit(client):
    created = client.post("/ops/tasks", json={"title": "deploy"}, headers=headers_of("otto"))
    task_id = created.get_json()["id"]
    assert created.get_json()["created_by"] == "otto"
    canceled = client.post(f"/ops/tasks/{task_id}/cancel", headers=headers_of("ada"))
    assert canceled.status_code in (200, 202)
    from tests.support.processes import wait_until
    wait_until(lambda: client.get(f"/ops/tasks/{task_id}", headers=ADMIN_HEADERS)
               .get_json()["status"] == "canceled", timeout=10)
    task = client.get(f"/ops/tasks/{task_id}", headers=ADMIN_HEADERS).get_json()
    assert (task["created_by"], task["canceled_by"]) == ("otto", "ada")
    assert task["error"] in ("canceled by ada", "canceled before it started")
    events = client.get(f"/ops/tasks/{task_id}/stream", headers=ADMIN_HEADERS).get_data(True)
    assert '"created_by":"otto"' in events and '"canceled_by":"ada"' in events
    records = audit(client, task_id=task_id)["records"]
    assert [(r["action"], r["actor"], r["outcome"]) for r in records] == [
        ("task.cancel", "ada", "ok"), ("task.create", "otto", "ok")]
    assert records[1]["client"] == "127.0.0.1" and records[1]["request_id"]
    assert records[1]["detail"]["status"] == 201


def test_tasks_are_filtered_by_creator(client):
    for name in ("otto", "ada", "otto"):
        client.post("/ops/tasks", json={"title": name}, headers=headers_of(name))
    mine = client.get("/ops/tasks?created_by=otto", headers=headers_of("vera")).get_json()
    assert [t["title"] for t in mine["tasks"]] == ["otto", "otto"]
    page = client.get("/ops/tasks?created_by=otto&limit=1", headers=ADMIN_HEADERS).get_json()
    rest = client.get(f"/ops/tasks?created_by=otto&cursor={page['next_cursor']}",
                      headers=ADMIN_HEADERS).get_json()
    assert len(page["tasks"]) == len(rest["tasks"]) == 1
    assert client.get("/ops/tasks?created_by=nobody", headers=ADMIN_HEADERS) \
        .get_json()["tasks"] == []


def test_a_refused_change_is_recorded_with_who_tried(client):
    refused = client.post("/ops/tasks", json={"title": "x"}, headers=headers_of("vera"))
    assert refused.status_code == 403
    [record] = audit(client, action="task.create")["records"]
    assert (record["actor"], record["outcome"], record["detail"]["status"]) == \
        ("vera", "denied", 403)
    invalid = client.post("/ops/tasks", json={"title": ""}, headers=headers_of("otto"))
    assert invalid.status_code == 422
    latest = audit(client, action="task.create", actor="otto")["records"][0]
    assert latest["outcome"] == "rejected" and "title" in latest["detail"]["error"]


def test_stream_tokens_minted_are_recorded(client):
    task_id = client.post("/ops/tasks", json={"title": "x"}, headers=ADMIN_HEADERS) \
        .get_json()["id"]
    client.post("/ops/stream_tokens", json={"task_id": task_id}, headers=headers_of("vera"))
    [record] = audit(client, action="stream_token.mint")["records"]
    assert (record["actor"], record["task_id"], record["outcome"]) == ("vera", task_id, "ok")


def test_a_flood_of_bad_tokens_writes_one_record(client):
    for index in range(300):
        answer = client.get("/ops/tasks", headers={"X-Admin-Token": f"guess-{index}"})
        assert answer.status_code == 401
    records = audit(client, action="auth.refused")["records"]
    assert len(records) == 1
    assert records[0]["detail"] == {"reason": "invalid X-Admin-Token", "status": 401,
                                    "count": 1}
    assert all(f"guess-{i}" not in str(records) for i in range(300))  # no secret kept


def test_refusals_are_counted_per_window(clock):
    log = MemoryAuditLog()
    trail = AuditTrail(log, refusal_window=60, max_refusal_keys=3, clock=clock.now)
    for _ in range(50):
        trail.refused("invalid X-Admin-Token", client="10.0.0.1")
        clock.advance(1)
    assert [r.detail["count"] for r in trail.query(AuditQuery())] == [1]
    clock.advance(60)
    records = trail.query(AuditQuery())
    assert [r.detail["count"] for r in records] == [49, 1]
    assert sum(r.detail["count"] for r in records) == 50
    # Many clients: at most max_refusal_keys windows; the rest share one.
    for index in range(100):
        trail.refused("invalid X-Admin-Token", client=f"10.1.0.{index}")
    trail.close()
    records = trail.query(AuditQuery(limit=200))
    assert sum(r.detail["count"] for r in records) == 150
    assert len(records) <= 2 + 3 + 2


def test_the_audit_is_filtered_and_paged(client, app):
    for name in ("otto", "ada", "otto", "otto"):
        client.post("/ops/tasks", json={"title": "x"}, headers=headers_of(name))
    first = audit(client, actor="otto", limit=2)
    second = audit(client, actor="otto", limit=2, cursor=first["next_cursor"])
    ids = [r["id"] for r in first["records"] + second["records"]]
    assert len(ids) == 3 and ids == sorted(ids, reverse=True)
    newest = first["records"][0]["at"]
    assert [r["id"] for r in audit(client, since=newest)["records"]] == [ids[0]]
    assert ids[0] not in [r["id"] for r in audit(client, until=newest)["records"]]


@pytest.mark.parametrize("query, message", [
    ("limit=0", "limit must be an integer"), ("since=yesterday", "ISO 8601"),
    ("task_id=x", "task_id must be an integer"), ("cursor=-1", "cursor must be an integer"),
])
def test_bad_audit_filters_say_what_is_wrong(client, query, message):
    response = client.get(f"/ops/audit?{query}", headers=ADMIN_HEADERS)
    assert response.status_code == 422 and message in response.get_json()["error"]


def test_only_an_admin_reads_the_audit(client):
    assert client.get("/ops/audit", headers=headers_of("otto")).status_code == 403
    assert client.get("/ops/audit", headers=headers_of("ada")).status_code == 200


def test_the_in_process_audit_is_bounded_and_retained(clock):
    log = MemoryAuditLog(max_records=100, clock=clock.now)
    trail = AuditTrail(log, clock=clock.now)
    for index in range(150):
        trail.record("task.create", "ok", actor="otto", task_id=index)
        clock.advance(1)
    records = trail.query(AuditQuery(limit=200))
    assert len(records) == 100 and records[-1].task_id == 50
    deleted = trail.purge(clock.now() - timedelta(seconds=60), 1000)
    assert deleted == 40 and len(trail.query(AuditQuery(limit=200))) == 60
    assert isoformat(records[0].at).endswith("Z")
