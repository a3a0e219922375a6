"""Notifications (docs/notifications.md): a signed summary posted to each URL when a task ends,
retried with backoff; each delivery visible at GET /ops/tasks/{id}/notifications; secrets
never sent; the settings and recipe entries checked at start."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import sys
import uuid
from datetime import datetime

import pytest

from app import create_app
from app.config import ConfigError, Settings
from app.lifecycle import shutdown
from app.notify import MemoryDeliveryLog, Notifier
from app.recipes import NotifyTarget, RecipeFileError, parse_recipes
from app.store import MemoryStore, TaskStatus
from tests.support.api import ADMIN, SECRET, Admin, live_env, make_settings
from tests.support.live import GunicornServer
from tests.support.processes import ROOT, wait_until
from tests.support.receiver import Receiver

NOTIFY_SECRET = "notify-secret-0123456789abcdef"
PUBLIC = "https://ops.example.com"
DEPLOY_KEY = "deploy-key-value-0123456789"


def notify_settings(receiver, **overrides) -> Settings:
    values = dict(notify_urls=(NotifyTarget(receiver.url + "/hook"),),
                  notify_secret=NOTIFY_SECRET, notify_retry_base=0.01, public_url=PUBLIC)
    return make_settings(**{**values, **overrides})


def book(**recipes):
    return parse_recipes({"recipes": recipes}, base=ROOT)


def expected_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(NOTIFY_SECRET.encode(), body, hashlib.sha256).hexdigest()


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def finished(admin, task_id: int) -> dict:
    return wait_until(lambda: (t := admin.get(f"/ops/tasks/{task_id}").get_json())["status"]
                      in {"done", "failed", "canceled"} and t, message=f"task {task_id} to end")


def deliveries(admin, task_id: int) -> list[dict]:
    answer = admin.get(f"/ops/tasks/{task_id}/notifications")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["task_id"] == task_id
    return answer.get_json()["notifications"]


def settled(app) -> None:
    """Wait until the notifier has nothing queued or under way."""
    notifier = app.extensions["services"].notifier
    wait_until(lambda: notifier.waiting == 0, message="the notifier to settle")


def test_a_failing_receiver_gets_one_signed_delivery_after_retries(make_app):
    with Receiver(answers=[500, 500], hold_first=True) as receiver:
        app = make_app(notify_settings(receiver))
        admin = Admin(app.test_client())
        task_id = admin.create("Build X")["id"]

        # The receiver holds its first answer: the task ends all the same.
        task = finished(admin, task_id)
        assert task["status"] == "done"
        receiver.release()
        requests = receiver.answered(3)
        pending = wait_until(lambda: (d := deliveries(admin, task_id)) and
                             d[0]["status"] == "delivered" and d)

        assert [r.status for r in requests] == [500, 500, 200]
        assert when(task["finished_at"]) < requests[0].answered_at
        [record] = pending
        assert record["attempts"] == 3 and record["last_status"] == 200
        assert record["last_error"] is None and record["next_attempt_at"] is None
        assert record["url"] == receiver.url + "/hook" and record["event"] == "task.ended"
        assert when(record["delivered_at"]) > when(task["finished_at"])
        settled(app)
        assert len(receiver.requests) == 3  # nothing more once delivered

        ids = {r.headers["X-Ops-Delivery"] for r in requests}
        assert len(ids) == 1 and uuid.UUID(ids.pop())  # the same delivery, tried three times
        for request in requests:
            assert request.path == "/hook"
            assert request.headers["X-Ops-Signature-256"] == expected_signature(request.body)
            assert request.headers["X-Ops-Event"] == "task.ended"
            assert request.headers["Content-Type"] == "application/json"
        body = json.loads(requests[0].body)
        assert body["event"] == "task.ended"
        assert body["url"] == f"{PUBLIC}/ops/ui#/tasks/{task_id}"
        assert body["log_tail"] == []
        assert body["duration_seconds"] >= 0
        assert body["task"] == {
            "id": task_id, "title": "Build X", "status": "done", "runner": "dev",
            "recipe": None, "params": None, "created_by": "admin", "canceled_by": None,
            "error": None, "created_at": task["created_at"], "started_at": task["started_at"],
            "finished_at": task["finished_at"]}


def test_a_refusing_receiver_is_given_up_at_once(make_app):
    with Receiver(answers=[404]) as receiver:
        app = make_app(notify_settings(receiver))
        admin = Admin(app.test_client())
        task_id = admin.create()["id"]
        receiver.answered(1)
        settled(app)
        [record] = deliveries(admin, task_id)
        assert (record["status"], record["attempts"], record["last_status"]) == ("failed", 1, 404)
        assert record["last_error"] == "HTTP 404"
        assert len(receiver.requests) == 1


def test_with_notify_on_start_both_events_go_out(make_app):
    with Receiver() as receiver:
        app = make_app(notify_settings(receiver, notify_on_start=True))
        admin = Admin(app.test_client())
        task_id = admin.create()["id"]
        finished(admin, task_id)
        receiver.answered(2)
        settled(app)
        events = sorted(json.loads(r.body)["event"] for r in receiver.requests)
        assert events == ["task.ended", "task.started"]
        started = next(json.loads(r.body) for r in receiver.requests
                       if r.headers["X-Ops-Event"] == "task.started")
        assert started["task"]["status"] == "running" and started["duration_seconds"] is None
        assert {d["event"] for d in deliveries(admin, task_id)} == {"task.ended", "task.started"}


def test_a_recipes_urls_get_only_its_own_tasks_and_slack_gets_a_message(make_app):
    with Receiver() as plain, Receiver() as slack:
        recipes = book(
            loud={"argv": ["true"], "notify": [
                plain.url + "/loud", {"url": slack.url + "/services/T0/B0/XYZ",
                                      "format": "slack"}]},
            quiet={"argv": ["true"]})
        app = make_app(make_settings(recipes=recipes, notify_secret=NOTIFY_SECRET,
                                     notify_retry_base=0.01, public_url=PUBLIC))
        admin = Admin(app.test_client())
        quiet = admin.create("Quiet one", recipe="quiet")["id"]
        other = admin.create("No recipe")["id"]
        loud = admin.create("Deploy <api> & co", recipe="loud")["id"]
        for task_id in (quiet, other, loud):
            finished(admin, task_id)
        plain.answered(1)
        slack.answered(1)
        settled(app)

        assert deliveries(admin, quiet) == [] and deliveries(admin, other) == []
        assert [json.loads(r.body)["task"]["id"] for r in plain.requests] == [loud]
        assert json.loads(plain.requests[0].body)["task"]["recipe"] == "loud"
        [message] = slack.requests
        assert message.headers["X-Ops-Signature-256"] == expected_signature(message.body)
        body = json.loads(message.body)
        assert set(body) == {"text"}
        text = body["text"]
        assert text.startswith(f":white_check_mark: Task #{loud} *done*: ")
        assert "Deploy &lt;api&gt; &amp; co" in text and "— by admin" in text
        assert f"<{PUBLIC}/ops/ui#/tasks/{loud}|open>" in text
        shown = {d["format"]: d["url"] for d in deliveries(admin, loud)}
        assert shown == {"json": plain.url + "/loud", "slack": slack.url + "/[redacted]"}


def test_secrets_a_command_prints_are_not_sent(make_app):
    """A recipe prints the admin token, the stream secret, the notify secret and its own
    environment's value: the summary's log tail has none of them."""
    printed = [ADMIN, SECRET, NOTIFY_SECRET]
    code = ("import os, sys; [print('leak', a) for a in sys.argv[1:]]; "
            "print('env', os.environ['DEPLOY_KEY']); print('the end')")
    recipes = book(leak={"argv": [sys.executable, "-c", code, *printed],
                         "env": {"DEPLOY_KEY": DEPLOY_KEY}})
    with Receiver() as receiver:
        app = make_app(notify_settings(receiver, dev_mode=False, recipes=recipes,
                                       metrics_token="metrics-token-0123456789"))
        admin = Admin(app.test_client())
        task_id = admin.create(f"Leak {ADMIN}", recipe="leak")["id"]
        assert finished(admin, task_id)["status"] == "done"
        [request] = receiver.answered(1)
        body = json.loads(request.body)
        assert body["log_tail"] == ["leak [redacted]"] * 3 + ["env [redacted]", "the end"]
        assert body["task"]["title"] == "Leak [redacted]"
        for secret in (*printed, DEPLOY_KEY):
            assert secret.encode() not in request.body
        # What the process itself logs of the command's output is not this test's concern.


def test_a_url_with_credentials_is_shown_without_them(make_app):
    with Receiver() as receiver:
        target = receiver.url.replace("http://", "http://user:pass@") + "/hook?key=k3y&x="
        app = make_app(notify_settings(receiver, notify_urls=(NotifyTarget(target),)))
        admin = Admin(app.test_client())
        task_id = admin.create()["id"]
        receiver.answered(1)
        settled(app)
        [record] = deliveries(admin, task_id)
        host = receiver.url.removeprefix("http://")
        assert record["url"] == f"http://[redacted]@{host}/hook?key=[redacted]&x=[redacted]"
        assert receiver.requests[0].path == "/hook?key=k3y&x="


def test_the_list_of_an_unknown_task_is_404_and_of_a_quiet_one_empty(admin):
    assert admin.get("/ops/tasks/999/notifications").status_code == 404
    task_id = admin.create()["id"]
    assert deliveries(admin, task_id) == []


def test_a_stop_gives_pending_deliveries_a_grace_then_logs_them(make_app, caplog):
    with Receiver(answers=[503] * 1000) as receiver:
        app = make_app(notify_settings(receiver, notify_retry_base=0.05))
        admin = Admin(app.test_client())
        task_id = admin.create()["id"]
        receiver.answered(2)
        with caplog.at_level(logging.INFO, logger="app.notify"):
            shutdown(app, grace=0.3)
        [record] = app.extensions["services"].notifier.records.for_task(task_id)
        assert record.status == "pending" and record.next_attempt_at is not None
        assert record.attempts >= 2 and record.last_status == 503
        assert any("not delivered before the stop" in r.getMessage()
                   and "no other process retries it" in r.getMessage() for r in caplog.records)
        count = len(receiver.requests)
        app.extensions["services"].notifier.task_ended(task_id, "done", {}, None)
        assert len(receiver.requests) == count  # nothing goes out after the stop


# -- settings and recipe entries ---------------------------------------------------------------

ENV = {"SETTINGS_ADMIN_TOKEN": ADMIN}


@pytest.mark.parametrize("env, message", [
    ({"OPS_NOTIFY_URLS": "https://hooks.example.com/a"},
     "OPS_NOTIFY_SECRET is not set, but OPS_NOTIFY_URLS is set"),
    ({"OPS_NOTIFY_URLS": "hooks.example.com/a", "OPS_NOTIFY_SECRET": NOTIFY_SECRET},
     "OPS_NOTIFY_URLS: 'hooks.example.com/a' is not an http"),
    ({"OPS_NOTIFY_URLS": "https://a.example, ftp://b.example", "OPS_NOTIFY_SECRET": NOTIFY_SECRET},
     "'ftp://b.example' is not an http"),
    ({"OPS_NOTIFY_URLS": "https://a.example", "OPS_NOTIFY_SECRET": "short"},
     "OPS_NOTIFY_SECRET must be at least 16 characters"),
    ({"OPS_PUBLIC_URL": "ops.example.com"}, "OPS_PUBLIC_URL must be the http"),
])
def test_bad_notification_settings_stop_the_start(env, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_env({**ENV, **env})


def test_good_notification_settings():
    settings = Settings.from_env({**ENV, "OPS_NOTIFY_URLS": " https://a.example/x ,http://b:8/",
                                  "OPS_NOTIFY_SECRET": NOTIFY_SECRET,
                                  "OPS_PUBLIC_URL": "https://ops.example.com/",
                                  "OPS_NOTIFY_ON_START": "1"})
    assert settings.notify_urls == (NotifyTarget("https://a.example/x"),
                                    NotifyTarget("http://b:8/"))
    assert settings.public_url == "https://ops.example.com" and settings.notify_on_start
    assert NOTIFY_SECRET not in repr(settings) and "a.example" not in repr(settings)


def test_a_recipes_notify_url_needs_the_secret_too(tmp_path):
    path = tmp_path / "recipes.toml"
    path.write_text('[recipes.ship]\nargv = ["true"]\nnotify = ["https://hooks.example.com/s"]\n')
    with pytest.raises(ConfigError, match="OPS_NOTIFY_SECRET is not set, but recipe 'ship' has "
                                          "notify URLs"):
        Settings.from_env({**ENV, "DEV_LOCAL_LLM": "1", "OPS_RECIPES": str(path)})
    settings = Settings.from_env({**ENV, "DEV_LOCAL_LLM": "1", "OPS_RECIPES": str(path),
                                  "OPS_NOTIFY_SECRET": NOTIFY_SECRET})
    assert settings.recipes.get("ship").notify == (NotifyTarget("https://hooks.example.com/s"),)


def test_the_app_refuses_urls_without_a_secret_however_built():
    with pytest.raises(ConfigError, match="OPS_NOTIFY_SECRET is not set"):
        create_app(make_settings(notify_urls=(NotifyTarget("https://a.example"),)))


@pytest.mark.parametrize("notify, message", [
    ("https://a.example", "notify must be a list"),
    (["a.example"], "notify: 'a.example' is not an http"),
    ([{"url": "https://a.example", "format": "teams"}], "format must be one of json, slack"),
    ([{"url": "https://a.example", "channel": "#ops"}], "unknown key(s) channel"),
    ([{"format": "slack"}], "a notification URL must be a non-empty string"),
])
def test_bad_notify_entries_of_a_recipe_are_refused(notify, message):
    with pytest.raises(RecipeFileError) as error:
        book(ship={"argv": ["true"], "notify": notify})
    assert message in str(error.value)


@pytest.mark.live
@pytest.mark.slow
def test_under_gunicorn_a_held_receiver_does_not_hold_the_task_and_a_retry_delivers():
    """The same under gevent (greenlets, the in-process store): the first answer is held
    until the task is seen done, then a 500 and a retry one second later."""
    with Receiver(answers=[500], hold_first=True) as receiver:
        env = live_env(DEV_LOCAL_LLM="1", OPS_DEV_TICK_SECONDS="0.05",
                       OPS_NOTIFY_URLS=receiver.url + "/hook", OPS_NOTIFY_SECRET=NOTIFY_SECRET)
        with GunicornServer(env) as server:
            task_id = server.admin.create("live")["id"]
            wait_until(lambda: server.admin.task(task_id)["status"] == "done")
            receiver.release()
            requests = receiver.answered(2)
            assert [r.status for r in requests] == [500, 200]
            assert all(r.headers["X-Ops-Signature-256"] == expected_signature(r.body)
                       for r in requests)

            def record():
                answer = server.admin.get(f"/ops/tasks/{task_id}/notifications").json()
                [delivery] = answer["notifications"]
                return delivery["status"] == "delivered" and delivery

            assert wait_until(record)["attempts"] == 2
            log = server.log()
            assert "Traceback" not in log and NOTIFY_SECRET not in log
            assert f"task {task_id}: task.ended delivered to {receiver.url}/hook (attempt 2)" in log


def direct_notifier(receiver, **options) -> tuple[Notifier, MemoryStore]:
    store = MemoryStore()
    options = {"targets": (NotifyTarget(receiver.url + "/hook"),), "secret": NOTIFY_SECRET,
               "backoff_base": 0.01, **options}
    return Notifier(store, MemoryDeliveryLog(), **options), store


def ended_task(store) -> tuple[int, datetime]:
    task = store.create_task("t", None, "dev")
    store.mark_running(task.id)
    event = store.finish(task.id, TaskStatus.DONE, {})
    return task.id, event.created_at


def test_a_receiver_failing_past_the_deadline_is_given_up():
    with Receiver(answers=[502] * 1000) as receiver:
        notifier, store = direct_notifier(receiver, give_up_after=0.5)
        notifier._client()  # loaded now, not in the first attempt's time
        task_id, at = ended_task(store)
        notifier.task_ended(task_id, TaskStatus.DONE, {}, at)
        [record] = wait_until(lambda: (r := notifier.records.for_task(task_id))
                              and r[0].status == "failed" and r)
        # 0.01, 0.02, 0.04 ... s apart, and none past 0.5 s after the first
        assert 3 <= record.attempts == len(receiver.requests) <= 7
        assert record.last_status == 502 and record.next_attempt_at is None
        notifier.close(1)


def test_past_its_bound_the_queue_drops_new_notices(caplog):
    with Receiver() as receiver:
        notifier, store = direct_notifier(receiver, senders=0, max_waiting=2)
        task_id, at = ended_task(store)
        for _ in range(3):
            notifier.task_ended(task_id, TaskStatus.DONE, {}, at)
        assert notifier.waiting == 2
        assert "2 notifications already wait" in caplog.text
        notifier.close(0)
        assert "not sent: the server stopped first" in caplog.text
