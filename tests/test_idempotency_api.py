"""``Idempotency-Key`` on ``POST /ops/tasks`` and on a relaunch, through the Flask test client
(the in-process keys): replays, another request under a key, bad keys, concurrent requests
with one key, a failed first request, keys per credential, expiry."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from app.executor import QueueFull
from app.http import idempotency
from app.store.idempotency import MemoryIdempotencyKeys
from tests.support.api import make_settings
from tests.support.credentials import headers_of, write_credentials
from tests.support.processes import wait_until

TERMINAL = {"done", "failed", "canceled"}


@pytest.fixture
def app(make_app, tmp_path):
    return make_app(make_settings(tokens_file=str(write_credentials(tmp_path / "tokens.toml"))))


@pytest.fixture
def client(app):
    return app.test_client()


def create(client, key: str | None, who: str = "otto", path: str = "/ops/tasks", **body):
    headers = {**headers_of(who), **({"Idempotency-Key": key} if key is not None else {})}
    return client.post(path, json=body or {"title": "Deploy api"}, headers=headers)


def tasks(client) -> list[dict]:
    return client.get("/ops/tasks", headers=headers_of("vera")).get_json()["tasks"]


def test_the_same_request_again_gets_the_first_task(client):
    first = create(client, "deploy-2026-12-02")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    task_id = first.get_json()["id"]
    wait_until(lambda: client.get(f"/ops/tasks/{task_id}", headers=headers_of("vera"))
               .get_json()["status"] in TERMINAL, timeout=20)
    again = create(client, "deploy-2026-12-02")
    assert again.status_code == 200, again.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == f"/ops/tasks/{task_id}"
    replay = again.get_json()
    assert replay["id"] == task_id
    assert replay["status"] == "done"  # the task as it is now
    assert replay["stream_url"] == f"/ops/tasks/{task_id}/stream"
    assert replay["stream_token"].startswith(f"v1.{task_id}.")
    stream = client.get(replay["stream_url"], query_string={"token": replay["stream_token"]},
                        buffered=False)
    assert stream.status_code == 200  # the fresh token opens the task's stream
    stream.close()
    assert [t["id"] for t in tasks(client)] == [task_id]
    # The body is compared parsed: the same fields in another order are the same request.
    reordered = client.post("/ops/tasks", data='{ "body": null,"title":"Deploy api"}',
                            content_type="application/json",
                            headers={**headers_of("otto"), "Idempotency-Key": "k-order"})
    same = client.post("/ops/tasks", data='{"title": "Deploy api", "body": null}',
                       content_type="application/json",
                       headers={**headers_of("otto"), "Idempotency-Key": "k-order"})
    assert (reordered.status_code, same.status_code) == (201, 200)


def test_without_a_key_every_request_creates(client):
    ids = {create(client, None).get_json()["id"] for _ in range(3)}
    assert len(ids) == 3


def test_the_same_key_with_another_request_is_422(client):
    task_id = create(client, "k1").get_json()["id"]
    for path, body in [("/ops/tasks", {"title": "Deploy web"}),
                       ("/ops/tasks", {"title": "Deploy api", "body": "notes"}),
                       (f"/ops/tasks/{task_id}/relaunch", {})]:
        refused = create(client, "k1", path=path, **body)
        assert refused.status_code == 422, (path, refused.get_json())
        assert refused.get_json()["error"] == "this Idempotency-Key was used with another request"
    assert [t["id"] for t in tasks(client)] == [task_id]


@pytest.mark.parametrize("key", ["", " ", "two words", "tab\there", "caf\u00e9", "x" * 256,
                                 "\x7f"])
def test_a_key_must_be_1_to_255_visible_ascii_characters(client, key):
    refused = create(client, key)
    assert refused.status_code == 422
    assert "Idempotency-Key must be 1 to 255 visible ASCII characters" in \
        refused.get_json()["error"]
    assert tasks(client) == []


def test_the_longest_and_oddest_keys_are_accepted(client):
    for key in ("x" * 255, "!", "~a\"b'c,d;e=f{}"):
        assert create(client, key).status_code == 201, key
        assert create(client, key).status_code == 200, key
    # Spaces around it are not part of it, as HTTP servers drop them.
    assert create(client, "spaced").status_code == 201
    assert create(client, " spaced\t").status_code == 200


def test_concurrent_requests_with_one_key_make_one_task(app):
    racers = 8
    barrier = threading.Barrier(racers)
    answers = [None] * racers

    def send(n: int) -> None:
        client = app.test_client()
        barrier.wait(10)
        response = create(client, "race")
        answers[n] = (response.status_code, response.get_json()["id"])

    threads = [threading.Thread(target=send, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] * (racers - 1) + [201], answers
    assert len({task_id for _, task_id in answers}) == 1
    assert len(tasks(app.test_client())) == 1


class HeldSubmit:
    """The executor's submit, held until ``release`` is set: the first request stays under
    way while a second one comes."""

    def __init__(self, app):
        self.executor = app.extensions["services"].executor
        self.submit = self.executor.submit
        self.entered = threading.Event()
        self.release = threading.Event()
        self.executor.submit = self.held

    def held(self, *args, **kwargs):
        self.entered.set()
        assert self.release.wait(20)
        return self.submit(*args, **kwargs)


def send_in_background(app, answers: list, key: str) -> threading.Thread:
    def send():
        response = create(app.test_client(), key)
        answers.append((response.status_code, response.get_json(), dict(response.headers)))
    thread = threading.Thread(target=send)
    thread.start()
    return thread


def test_a_second_request_waits_for_the_first_and_replays_it(app):
    held = HeldSubmit(app)
    keys = app.extensions["services"].idempotency
    waiting = threading.Event()
    wait = keys.wait
    keys.wait = lambda *args, **kwargs: waiting.set() or wait(*args, **kwargs)
    first, second = [], []
    first_thread = send_in_background(app, first, "slow")
    assert held.entered.wait(10)  # the first one holds the key, its task not made yet
    second_thread = send_in_background(app, second, "slow")
    assert waiting.wait(10)  # the second one waits for it
    held.release.set()
    first_thread.join(20)
    second_thread.join(20)
    assert first[0][0] == 201 and second[0][0] == 200
    assert first[0][1]["id"] == second[0][1]["id"]
    assert len(tasks(app.test_client())) == 1


def test_a_request_that_waited_too_long_is_told_to_come_back(app, monkeypatch):
    monkeypatch.setattr(idempotency, "WAIT_SECONDS", 0.2)
    held = HeldSubmit(app)
    first = []
    first_thread = send_in_background(app, first, "slow")
    assert held.entered.wait(10)
    busy = create(app.test_client(), "slow")
    assert busy.status_code == 409
    assert busy.get_json()["error"] == "a request with this Idempotency-Key is still in progress"
    assert busy.headers["Retry-After"] == "1"
    held.release.set()
    first_thread.join(20)
    assert first[0][0] == 201
    assert create(app.test_client(), "slow").status_code == 200


def test_a_failed_first_request_lets_the_key_go(client, app, monkeypatch):
    refused = create(client, "retry-me", recipe="nope")
    assert refused.status_code == 422  # no task: the key is free again
    fixed = create(client, "retry-me", title="Deploy api")
    assert fixed.status_code == 201, fixed.get_json()

    executor = app.extensions["services"].executor
    submit = executor.submit
    calls = []

    def full_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise QueueFull("the queue is full (10 waiting)")
        return submit(*args, **kwargs)

    monkeypatch.setattr(executor, "submit", full_once)
    assert create(client, "busy-queue").status_code == 429
    again = create(client, "busy-queue")  # the same request, retried
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert app.extensions["services"].idempotency.lookup("otto", "busy-queue").task_id == \
        again.get_json()["id"]


def test_a_refused_request_does_not_touch_the_key(client):
    assert create(client, "mine", who="vera").status_code == 403
    assert create(client, "mine", who="otto").status_code == 201


def test_keys_belong_to_each_credential(client):
    otto = create(client, "shared", who="otto")
    ada = create(client, "shared", who="ada")
    assert (otto.status_code, ada.status_code) == (201, 201)
    assert otto.get_json()["id"] != ada.get_json()["id"]
    assert (otto.get_json()["created_by"], ada.get_json()["created_by"]) == ("otto", "ada")
    assert create(client, "shared", who="ada").get_json()["id"] == ada.get_json()["id"]


def test_a_key_is_forgotten_after_24_hours(app, client, clock):
    app.extensions["services"].idempotency = MemoryIdempotencyKeys(clock=clock.now)
    first = create(client, "daily").get_json()["id"]
    clock.advance(24 * 3600 - 1)
    assert create(client, "daily").get_json()["id"] == first
    clock.advance(1)
    renewed = create(client, "daily", title="Deploy api, a day later")
    assert renewed.status_code == 201 and renewed.get_json()["id"] != first
    assert create(client, "daily", title="Deploy api, a day later").get_json()["id"] == \
        renewed.get_json()["id"]


def test_a_key_whose_task_was_deleted_creates_again(app, client):
    first = create(client, "k").get_json()["id"]
    store = app.extensions["services"].store
    wait_until(lambda: store.get_task(first).status.is_terminal, timeout=20)
    assert store.purge_finished(datetime.now(timezone.utc) + timedelta(seconds=1), 10) == 1
    again = create(client, "k")
    assert again.status_code == 201 and again.get_json()["id"] != first


def test_a_relaunch_with_a_key_is_replayed(client):
    source = create(client, None).get_json()["id"]
    wait_until(lambda: client.get(f"/ops/tasks/{source}", headers=headers_of("vera"))
               .get_json()["status"] in TERMINAL, timeout=20)
    path = f"/ops/tasks/{source}/relaunch"
    headers = {**headers_of("otto"), "Idempotency-Key": "again-1"}
    first = client.post(path, headers=headers)
    replay = client.post(path, headers=headers, json={})  # an empty body is no body
    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json()["id"] == first.get_json()["id"]
    assert replay.get_json()["relaunched_from"] == source
    other = client.post(path, headers=headers, json={"title": "Another"})
    assert other.status_code == 422
    bad = client.post(path, headers={**headers_of("otto"), "Idempotency-Key": "a b"})
    assert bad.status_code == 422 and "Idempotency-Key" in bad.get_json()["error"]
