"""Health, readiness, request ids, log lines, redaction, metrics and proxy trust, in-process."""

from __future__ import annotations

import json
import logging
import shlex

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import ConfigError, Settings, create_app
from app.logs import REDACTED, JsonFormatter, Redactor, redact_pieces, secret_pieces
from app.store import MemoryStore, StoreUnavailable
from tests.support.api import ADMIN, make_settings
from tests.support.processes import wait_until
from tests.support.sse import DEV_KINDS, events

METRICS_TOKEN = "metrics-token-0123456789"


class BrokenStore(MemoryStore):
    """A store whose backend is down: check() and reads fail as StoreUnavailable."""

    def check(self):
        raise StoreUnavailable("connection refused by db.internal:5432 (password=hunter2hunter2)")

    def list_tasks(self, *args, **kwargs):
        raise StoreUnavailable("connection refused")


@pytest.fixture
def make_app():
    apps = []

    def make(store=None, **overrides):
        app = create_app(make_settings(metrics_token=METRICS_TOKEN, **overrides), store=store)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["services"].executor.shutdown(grace=5)


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.get_json()
    assert response.content_type.startswith("text/plain; version=")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for s in family.samples}


# -- health ---------------------------------------------------------------------------------

def test_healthz_and_readyz_need_no_credentials(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_readyz_is_503_without_detail_when_the_store_is_down(make_app, caplog):
    client = make_app(store=BrokenStore()).test_client()
    assert client.get("/healthz").status_code == 200  # alive, though not ready
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"error": "not ready"}
    assert response.headers["Retry-After"] == "5"
    assert "db.internal" in caplog.text  # the operator finds the reason in the log
    assert "hunter2" not in response.get_data(as_text=True)


# -- request ids and log lines --------------------------------------------------------------

def test_every_answer_carries_a_request_id(client):
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/nowhere").headers["X-Request-ID"]
    assert len(first) == 32 and first != second
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers[
        "X-Request-ID"] == "abc-123"  # nginx's $request_id is kept
    forged = client.get("/healthz", headers={"X-Request-ID": "a b INFO fake"})
    assert len(forged.headers["X-Request-ID"]) == 32  # replaced, not echoed into the log


def test_one_line_per_request_and_per_task_state_change(admin, caplog):
    caplog.set_level(logging.INFO, logger="app")
    with admin.post("/ops/tasks", json={"title": "Build X"}) as created:
        task = created.get_json()
    with admin.get(f"/ops/tasks/{task['id']}/stream?token=abc&x=1") as stream:
        assert [e["kind"] for e in events(stream.get_data(as_text=True))] == DEV_KINDS

    lines = [r for r in caplog.records if r.name == "app.requests"]
    create = next(r for r in lines if r.method == "POST")
    assert (create.path, create.status_code, create.remote_addr) == ("/ops/tasks", 201,
                                                                     "127.0.0.1")
    assert create.request_id and create.duration_ms >= 0
    assert any(r.path.endswith("?token=[redacted]&x=1") for r in lines)

    changes = [r for r in caplog.records if r.name == "app.tasks"]
    assert [(r.task_id, r.status, r.runner) for r in changes] == [
        (task["id"], "queued", "dev"), (task["id"], "running", "dev"),
        (task["id"], "done", "dev")]
    assert changes[-1].duration_s >= 4 * 0.01  # four ticks ran
    assert f"task {task['id']} done runner=dev duration=" in changes[-1].getMessage()


def test_a_task_canceled_while_queued_is_logged_once(make_app, caplog):
    caplog.set_level(logging.INFO, logger="app")
    app = make_app(workers=1, dev_tick_seconds=0.2)
    client = app.test_client()
    headers = {"X-Admin-Token": ADMIN}
    client.post("/ops/tasks", json={"title": "busy"}, headers=headers)
    queued = client.post("/ops/tasks", json={"title": "waits"}, headers=headers).get_json()
    assert client.post(f"/ops/tasks/{queued['id']}/cancel", headers=headers).status_code == 200
    changes = [r.status for r in caplog.records
               if r.name == "app.tasks" and r.task_id == queued["id"]]
    assert changes == ["queued", "canceled"]


def test_json_lines_carry_the_fields():
    record = logging.LogRecord("app.tasks", logging.INFO, __file__, 1, "task %s done", (7,), None)
    record.task_id, record.runner, record.duration_s = 7, "dev", 1.5
    line = json.loads(JsonFormatter(Redactor()).format(record))
    assert line["message"] == "task 7 done"
    assert (line["task_id"], line["runner"], line["duration_s"]) == (7, "dev", 1.5)
    assert line["level"] == "INFO" and line["logger"] == "app.tasks"
    assert line["time"].endswith("Z")


@pytest.mark.parametrize("text, expected", [
    ("GET /ops/tasks/1/stream?token=v1.1.2.sig HTTP/1.1",
     f"GET /ops/tasks/1/stream?token={REDACTED} HTTP/1.1"),
    ("/s?last_event_id=3&admin_token=abc&x=1", f"/s?last_event_id=3&admin_token={REDACTED}&x=1"),
    ("/s?%61dmin_token=abc", f"/s?%61dmin_token={REDACTED}"),
    ('{"path": "/s?token=abc"}', f'{{"path": "/s?token={REDACTED}"}}'),
    ("token=abc", f"token={REDACTED}"),
    ("X-Admin-Token: abc", f"X-Admin-Token: {REDACTED}"),
    ("{'authorization': 'Bearer abc'}", f"{{'authorization': '{REDACTED}'}}"),
    ("/s?tokens=1&mytoken=2 runner=dev", "/s?tokens=1&mytoken=2 runner=dev"),
])
def test_redaction(text, expected):
    assert Redactor()(text) == expected


def test_redaction_of_the_environments_secret_values():
    redactor = Redactor.from_environ({"SETTINGS_ADMIN_TOKEN": "admin-secret-1",
                                      "OPS_STREAM_SECRET": "first-secret-xx,second-secret-yy",
                                      "SUPABASE_SERVICE_ROLE_KEY": "eyJhbGciOi.key",
                                      "OPS_WORKERS": "12345678", "SHORT_TOKEN": "adm"})
    line = redactor("admin-secret-1 second-secret-yy eyJhbGciOi.key 12345678 adm")
    assert line == f"{REDACTED} {REDACTED} {REDACTED} 12345678 adm"


def test_redaction_of_pieces_of_a_secret():
    """A server that echoes part of a key ("sk-live-****8i9j") leaks no 8 characters of it."""
    key = "sk-live-0a1b2c3d4e5f6g7h8i9j"
    pieces = secret_pieces((key,))
    line = redact_pieces(f"key {key[:8]}****{key[-4:]}, {key[3:15]} and {key[-8:]}: {key}!",
                         pieces)
    assert line == f"key {REDACTED}****{key[-4:]}, {REDACTED} and {REDACTED}: {REDACTED}!"
    assert redact_pieces("sk-live 0a1b2c3 ordinary text", pieces) == (
        "sk-live 0a1b2c3 ordinary text")


# -- metrics ----------------------------------------------------------------------------------

@pytest.mark.parametrize("headers, status", [
    ({}, 401),
    ({"Authorization": "Bearer wrong-token-0123456789"}, 401),
    ({"X-Admin-Token": "wrong"}, 401),
    ({"Authorization": f"Bearer {METRICS_TOKEN}"}, 200),
    ({"X-Admin-Token": ADMIN}, 200),
])
def test_metrics_need_the_admin_or_the_metrics_token(make_app, headers, status):
    response = make_app().test_client().get("/metrics", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert "error" in response.get_json()


def test_metrics_without_a_metrics_token_take_only_the_admin_token(client):
    assert client.get("/metrics", headers={"Authorization": "Bearer anything"}).status_code == 401
    assert client.get("/metrics", headers={"X-Admin-Token": ADMIN}).status_code == 200


def test_metrics_count_store_errors_and_requests(make_app):
    client = make_app(store=BrokenStore()).test_client()
    before = scrape(client)
    assert client.get("/ops/tasks", headers={"X-Admin-Token": ADMIN}).status_code == 503
    client.get("/readyz")
    after = scrape(client)
    assert after[("ops_store_errors_total", (("operation", "list_tasks"),))] == 1
    assert after[("ops_store_errors_total", (("operation", "check"),))] == 1
    key = ("ops_http_request_duration_seconds_count",
           (("endpoint", "/ops/tasks"), ("method", "GET"), ("status", "503")))
    assert after[key] == before.get(key, 0) + 1


def test_metrics_follow_a_task_in_process(make_app):
    app = make_app(dev_tick_seconds=0.05)
    client = app.test_client()
    task = client.post("/ops/tasks", json={"title": "t"},
                       headers={"X-Admin-Token": ADMIN}).get_json()
    stream = client.get(f"/ops/tasks/{task['id']}/stream", headers={"X-Admin-Token": ADMIN},
                        buffered=False)
    wait_until(lambda: scrape(client)[("ops_streams_open", ())] == 1, timeout=5)
    done = ("ops_tasks_finished_total", (("status", "done"),))
    wait_until(lambda: scrape(client).get(done) == 1, timeout=5)
    stream.close()
    after = scrape(client)
    assert after[("ops_streams_open", ())] == 0
    assert after[("ops_tasks_created_total", (("runner", "dev"),))] == 1
    assert after[("ops_events_written_total", ())] == len(DEV_KINDS)
    assert after[("ops_tasks_running", ())] == 0 and after[("ops_tasks_queued", ())] == 0


# -- proxies and settings ------------------------------------------------------------------

@pytest.mark.parametrize("peer, trusted, seen", [
    ("127.0.0.1", ("127.0.0.1",), "198.51.100.7"),  # nginx on this host: believed
    ("10.0.0.5", ("127.0.0.1",), "10.0.0.5"),       # anyone else: header ignored
    ("10.0.0.5", ("10.0.0.0/8",), "198.51.100.7"),
    ("10.0.0.5", ("*",), "198.51.100.7"),
])
def test_forwarded_for_is_believed_only_from_trusted_proxies(make_app, peer, trusted, seen,
                                                             caplog):
    caplog.set_level(logging.INFO, logger="app.requests")
    client = make_app(trusted_proxies=trusted).test_client()
    with client.get("/healthz", environ_base={"REMOTE_ADDR": peer},
                    headers={"X-Forwarded-For": "203.0.113.1, 198.51.100.7"}):
        pass  # the line is written when the answer is closed
    assert [r.remote_addr for r in caplog.records if r.name == "app.requests"] == [seen]


@pytest.mark.parametrize("forwarded, shown", [
    ("6.6.6.6 request_id=fake", '"6.6.6.6 request_id=fake"'),
    ('6.6.6.6" request_id=fake x="', '"6.6.6.6\\" request_id=fake x=\\""'),
    ("198.51.100.7", "198.51.100.7"),  # a plain address is written as it is
    ("2001:db8::1", "2001:db8::1"),
])
def test_a_forwarded_address_cannot_add_fields_to_the_line(make_app, caplog, forwarded, shown):
    """A trusted proxy passes on what the client put in X-Forwarded-For: in the text line it
    stays one quoted value; JSON lines keep it as their remote_addr field."""
    caplog.set_level(logging.INFO, logger="app.requests")
    client = make_app().test_client()
    with client.get("/healthz", headers={"X-Forwarded-For": forwarded,
                                         "X-Request-ID": "real-id"}):
        pass
    (record,) = [r for r in caplog.records if r.name == "app.requests"]
    line = record.getMessage()
    assert f" remote={shown} request_id=real-id" in line
    fields = [word for word in shlex.split(line) if "=" in word]
    assert fields == [f"remote={forwarded}", "request_id=real-id"]
    entry = json.loads(JsonFormatter(Redactor()).format(record))
    assert (entry["remote_addr"], entry["request_id"]) == (forwarded, "real-id")


@pytest.mark.parametrize("env, message", [
    ({"OPS_METRICS_TOKEN": "short"}, "OPS_METRICS_TOKEN must be at least"),
    ({"FORWARDED_ALLOW_IPS": "127.0.0.1,nginx.local"}, "FORWARDED_ALLOW_IPS must list"),
])
def test_deployment_settings_are_checked(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"SETTINGS_ADMIN_TOKEN": ADMIN, **env})


def test_deployment_settings_defaults():
    settings = Settings.from_env({"SETTINGS_ADMIN_TOKEN": ADMIN,
                                  "FORWARDED_ALLOW_IPS": " 10.0.0.0/8 , ::1 "})
    assert settings.metrics_token is None
    assert settings.trusted_proxies == ("10.0.0.0/8", "::1")
