"""The SSE endpoint through the Flask test client."""

from __future__ import annotations

from tests.support.processes import wait_until
from tests.support.sse import DEV_KINDS, events, parse_messages


def stream(admin, task_id, query="", **kwargs):
    return admin.get(f"/ops/tasks/{task_id}/stream{query}", **kwargs)


def test_headers_retry_and_dev_sequence(admin):
    task_id = admin.create()["id"]
    response = stream(admin, task_id)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    text = response.get_data(as_text=True)
    assert text.startswith("retry: ")
    got = events(text)
    assert [e["kind"] for e in got] == DEV_KINDS
    assert [e["data"]["data"]["n"] for e in got if e["kind"] == "tick"] == [1, 2, 3, 4]
    for event in got:
        assert set(event["data"]) == {"id", "task_id", "kind", "created_at", "data"}
        assert event["data"]["id"] == event["id"] and event["data"]["task_id"] == task_id
        assert event["data"]["created_at"].endswith("Z") and len(event["data"]["created_at"]) == 27
    assert got[-1]["kind"] == "done"  # the response ended right after the terminal event


def test_every_run_gives_the_same_sequence(admin):
    runs = [[e["kind"] for e in events(stream(admin, admin.create()["id"]).get_data(as_text=True))]
            for _ in range(3)]
    assert runs == [DEV_KINDS] * 3


def test_resume_after_last_event_id_header_and_query(admin):
    task_id = admin.create()["id"]
    full = events(stream(admin, task_id).get_data(as_text=True))
    middle = full[3]["id"]
    by_header = events(stream(admin, task_id, headers={"Last-Event-ID": str(middle)})
                       .get_data(as_text=True))
    by_query = events(stream(admin, task_id, f"?last_event_id={middle}").get_data(as_text=True))
    assert by_header == by_query == full[4:]


def test_resume_past_the_end_closes_at_once(admin):
    task_id = admin.create()["id"]
    last = events(stream(admin, task_id).get_data(as_text=True))[-1]["id"]
    text = stream(admin, task_id, f"?last_event_id={last}").get_data(as_text=True)
    assert events(text) == [] and text.startswith("retry:")


def test_bad_last_event_id_is_422(admin):
    task_id = admin.create()["id"]
    response = stream(admin, task_id, headers={"Last-Event-ID": "abc"})
    assert response.status_code == 422 and "last_event_id" in response.get_json()["error"]


def test_unknown_task_is_json_404_not_a_stream(admin):
    response = stream(admin, 42)
    assert response.status_code == 404 and response.is_json


def test_heartbeat_while_idle_then_events(admin_for):
    admin = admin_for(dev_tick_seconds=0.6, heartbeat_seconds=0.1)
    task_id = admin.create()["id"]
    text = stream(admin, task_id).get_data(as_text=True)
    comments = [c for m in parse_messages(text.splitlines()) for c in m.get("comment", [])]
    assert "ping" in comments
    assert [e["kind"] for e in events(text)] == DEV_KINDS


def test_client_disconnect_closes_the_stream(admin_for):
    admin = admin_for(dev_tick_seconds=30, heartbeat_seconds=0.05)
    services = admin.client.application.extensions["services"]
    task_id = admin.create()["id"]
    response = stream(admin, task_id, buffered=False)
    chunks = iter(response.response)
    assert next(chunks).startswith(b"retry:")
    assert services.streams.open == 1
    response.close()  # what the server does when the client goes away
    assert services.streams.open == 0
    admin.post(f"/ops/tasks/{task_id}/cancel")
    wait_until(lambda: admin.get(f"/ops/tasks/{task_id}").get_json()["status"] == "canceled")


def test_a_stream_closed_before_its_first_write_gives_its_slot_back(admin_for, caplog):
    # The server hands the generator itself to the WSGI server (app/http/stream.py): closing
    # a generator that never started runs none of its code, so the slot and the request's
    # log line must come from the body's own close.
    admin = admin_for(dev_tick_seconds=30, heartbeat_seconds=0.05)
    services = admin.client.application.extensions["services"]
    task_id = admin.create()["id"]
    response = stream(admin, task_id, buffered=False)
    assert services.streams.open == 1
    with caplog.at_level("INFO", logger="app.requests"):
        response.close()
    assert services.streams.open == 0
    assert any(f"/ops/tasks/{task_id}/stream" in r.getMessage() for r in caplog.records)
    admin.post(f"/ops/tasks/{task_id}/cancel")


def test_stream_cap_answers_503_with_retry_after(admin_for):
    admin = admin_for(dev_tick_seconds=30, max_streams=1)
    task_id = admin.create()["id"]
    first = stream(admin, task_id, buffered=False)
    try:
        refused = stream(admin, task_id)
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        assert "streams" in refused.get_json()["error"]
    finally:
        first.close()
    second = stream(admin, task_id, buffered=False)
    assert second.status_code == 200  # the slot came back when the first closed
    second.close()


def test_stream_ends_at_its_maximum_lifetime_and_resumes(admin_for):
    admin = admin_for(dev_tick_seconds=0.15, heartbeat_seconds=0.05, stream_max_seconds=0.2)
    task_id = admin.create()["id"]
    seen, last, connections = [], 0, 0
    while connections < 100:  # each connection lives ~0.2 s; the task ~0.6 s
        connections += 1
        got = events(stream(admin, task_id, f"?last_event_id={last}").get_data(as_text=True))
        seen.extend(got)
        last = got[-1]["id"] if got else last
        if seen and seen[-1]["kind"] == "done":
            break
    assert [e["kind"] for e in seen] == DEV_KINDS
    assert len({e["id"] for e in seen}) == len(seen)
    assert connections > 1


def test_an_event_with_a_lone_surrogate_still_streams(admin_for):
    admin = admin_for(dev_tick_seconds=30)
    services = admin.client.application.extensions["services"]
    task_id = admin.create()["id"]
    services.store.append_event(task_id, "log", {"line": "broken \ud800 text"})
    services.executor.cancel(task_id)
    got = events(stream(admin, task_id).get_data(as_text=True))
    assert [e["kind"] for e in got][-2:] == ["log", "canceled"]
    assert got[-2]["data"]["data"]["line"] == "broken \ud800 text"
