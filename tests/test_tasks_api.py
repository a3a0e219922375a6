"""The task endpoints through the Flask test client (dev runner, in-process store)."""

from __future__ import annotations

import pytest
from flask import url_for

from tests.support.processes import wait_until
from tests.support.sse import events


def finished(admin, task_id):
    return wait_until(lambda: (t := admin.get(f"/ops/tasks/{task_id}").get_json())["status"]
                      in {"done", "failed", "canceled"} and t, message=f"task {task_id} to end")


def test_create_returns_201_with_id_and_queued(admin):
    response = admin.post("/ops/tasks", json={"title": "Build X", "body": "optional notes"})
    assert response.status_code == 201
    answer = response.get_json()
    assert answer["id"] == 1 and answer["status"] == "queued"
    assert response.headers["Location"] == "/ops/tasks/1"
    assert answer["stream_url"] == "/ops/tasks/1/stream" and answer["stream_token"]


def test_created_task_urls_are_the_url_maps_also_under_a_prefix(app, admin):
    """The answer's URLs are written out, not built from the map: they must stay equal."""
    for prefix in ("", "/behind/proxy"):
        response = admin.post("/ops/tasks", json={"title": "x"},
                              environ_overrides={"SCRIPT_NAME": prefix})
        task_id = response.get_json()["id"]
        with app.test_request_context(environ_overrides={"SCRIPT_NAME": prefix}):
            assert response.headers["Location"] == url_for("tasks.get_task", task_id=task_id)
            assert response.get_json()["stream_url"] == url_for("stream.stream_task",
                                                                task_id=task_id)


def test_task_detail_shows_runner_times_and_body(admin):
    task_id = admin.create("Build X", body="notes")["id"]
    task = finished(admin, task_id)
    assert task["status"] == "done" and task["runner"] == "dev" and task["body"] == "notes"
    assert task["created_at"] <= task["started_at"] <= task["finished_at"]
    assert task["error"] is None


def test_unknown_task_is_404_json(admin):
    response = admin.get("/ops/tasks/999")
    assert response.status_code == 404 and "not found" in response.get_json()["error"]


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "1.5", "99999999999999999999999"])
def test_path_ids_must_be_positive_integers(admin, raw):
    response = admin.get(f"/ops/tasks/{raw}")
    assert response.status_code == 404
    assert "positive integers" in response.get_json()["error"]


def test_list_newest_first_with_cursor_and_filter(admin):
    ids = [admin.create(f"t{n}")["id"] for n in range(5)]
    for task_id in ids:
        finished(admin, task_id)
    page = admin.get("/ops/tasks?limit=2").get_json()
    assert [t["id"] for t in page["tasks"]] == [5, 4] and page["next_cursor"] == 4
    page = admin.get(f"/ops/tasks?limit=2&cursor={page['next_cursor']}").get_json()
    assert [t["id"] for t in page["tasks"]] == [3, 2]
    page = admin.get(f"/ops/tasks?limit=2&cursor={page['next_cursor']}").get_json()
    assert [t["id"] for t in page["tasks"]] == [1] and page["next_cursor"] is None
    assert len(admin.get("/ops/tasks?status=done").get_json()["tasks"]) == 5
    assert admin.get("/ops/tasks?status=running").get_json()["tasks"] == []


@pytest.mark.parametrize("query, message", [
    ("limit=0", "limit"), ("limit=201", "limit"), ("limit=x", "limit"),
    ("status=bogus", "status must be one of"), ("cursor=-3", "cursor"),
])
def test_list_rejects_bad_parameters(admin, query, message):
    response = admin.get(f"/ops/tasks?{query}")
    assert response.status_code == 422 and message in response.get_json()["error"]


@pytest.mark.parametrize("kwargs, status, message", [
    ({"data": "{not json", "content_type": "application/json"}, 400, "malformed JSON"),
    ({"data": b'{"title": "\xff"}', "content_type": "application/json"}, 400, "UTF-8"),
    ({"data": '{"title": NaN}', "content_type": "application/json"}, 400, "malformed JSON"),
    ({"data": "title=x", "content_type": "application/x-www-form-urlencoded"}, 415, "Content-Type"),
    ({"json": ["a list"]}, 422, "JSON object"),
    ({"json": {}}, 422, "title is required"),
    ({"json": {"title": "   "}}, 422, "must not be blank"),
    ({"json": {"title": 42}}, 422, "title must be a string"),
    ({"json": {"title": "x" * 201}}, 422, "too long"),
    ({"json": {"title": "bell\x07"}}, 422, "control characters"),
    ({"json": {"title": "two\nlines"}}, 422, "control characters"),
    ({"json": {"title": "ok", "body": {"nested": [1]}}}, 422, "body must be a string"),
    ({"json": {"title": "ok", "priority": 1}}, 422, "unknown field(s): priority"),
])
def test_create_rejects_bad_input_and_creates_nothing(admin, kwargs, status, message):
    response = admin.post("/ops/tasks", **kwargs)
    assert response.status_code == status
    assert message in response.get_json()["error"]
    assert admin.get("/ops/tasks").get_json()["tasks"] == []


def test_oversized_body_is_413(admin):
    response = admin.post("/ops/tasks", json={"title": "x", "body": "y" * 70_000})
    assert response.status_code == 413 and response.get_json()["error"]


def test_wrong_method_is_405_json(admin):
    response = admin.client.delete("/ops/tasks", headers=admin.headers)
    assert response.status_code == 405 and response.get_json()["error"]
    assert "GET" in response.headers["Allow"]


def test_cancel_running_task_ends_canceled(admin_for):
    admin = admin_for(dev_tick_seconds=30)
    task_id = admin.create("slow")["id"]
    wait_until(lambda: admin.get(f"/ops/tasks/{task_id}").get_json()["status"] == "running")
    response = admin.post(f"/ops/tasks/{task_id}/cancel")
    assert response.status_code in (200, 202)
    task = finished(admin, task_id)
    assert task["status"] == "canceled" and task["error"] == "canceled by admin"
    again = admin.post(f"/ops/tasks/{task_id}/cancel")
    assert again.status_code == 409 and again.get_json()["status"] == "canceled"


def test_cancel_queued_task_is_immediate_and_twice_harmless(admin_for):
    admin = admin_for(dev_tick_seconds=30, workers=1)
    admin.create("occupies the only worker")
    queued = admin.create("waits")["id"]
    first = admin.post(f"/ops/tasks/{queued}/cancel")
    assert first.status_code == 200 and first.get_json()["status"] == "canceled"
    second = admin.post(f"/ops/tasks/{queued}/cancel")
    assert second.status_code == 409 and second.get_json()["status"] == "canceled"
    kinds = [e["kind"] for e in _events(admin, queued)]
    assert kinds == ["created", "canceled"]


def test_finished_task_cancel_is_409(admin):
    task_id = admin.create()["id"]
    finished(admin, task_id)
    response = admin.post(f"/ops/tasks/{task_id}/cancel")
    assert response.status_code == 409 and response.get_json()["status"] == "done"


def test_full_queue_is_429_and_creates_nothing(admin_for):
    admin = admin_for(dev_tick_seconds=30, workers=1, queue_size=1)
    admin.create("running")
    admin.create("queued")
    response = admin.post("/ops/tasks", json={"title": "one too many"})
    assert response.status_code == 429 and "queue is full" in response.get_json()["error"]
    assert response.headers["Retry-After"]
    assert len(admin.get("/ops/tasks").get_json()["tasks"]) == 2


def test_no_runner_outside_dev_mode_is_503(admin_for):
    response = admin_for(dev_mode=False).post("/ops/tasks", json={"title": "x"})
    assert response.status_code == 503 and "DEV_LOCAL_LLM" in response.get_json()["error"]


def _events(admin, task_id):
    return events(admin.get(f"/ops/tasks/{task_id}/stream").get_data(as_text=True))
