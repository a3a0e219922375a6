"""The Supabase settings, and the app on the Supabase store without gevent (plain threads)."""

import threading

import pytest

from app import ConfigError, Settings, create_app
from app.executor.runners.dev import DevRunner
from tests.support.api import ADMIN, Admin, make_settings
from tests.support.processes import wait_until
from tests.support.sse import DEV_KINDS, events

BASE = {"SETTINGS_ADMIN_TOKEN": ADMIN}


def test_supabase_settings_defaults_and_names():
    settings = Settings.from_env({**BASE, "OPS_SUPABASE_POLL_SECONDS": "0.25",
                                  "OPS_SUPABASE_TIMEOUT_SECONDS": "3",
                                  "OPS_SUPABASE_LEASE_SECONDS": "5",
                                  "OPS_SUPABASE_ORPHAN_SECONDS": "20",
                                  "OPS_SUPABASE_OUTBOX_EVENTS": "50"})
    assert (settings.supabase_poll_seconds, settings.supabase_timeout_seconds,
            settings.supabase_lease_seconds, settings.supabase_orphan_seconds,
            settings.supabase_outbox_events) == (0.25, 3.0, 5.0, 20.0, 50)
    defaults = Settings.from_env(BASE)
    assert (defaults.supabase_poll_seconds, defaults.supabase_lease_seconds,
            defaults.supabase_orphan_seconds) == (0.5, 10.0, 60.0)


@pytest.mark.parametrize("env, message", [
    ({"OPS_SUPABASE_POLL_SECONDS": "0"}, "OPS_SUPABASE_POLL_SECONDS must be between"),
    ({"OPS_SUPABASE_OUTBOX_EVENTS": "many"}, "OPS_SUPABASE_OUTBOX_EVENTS must be an integer"),
    ({"OPS_SUPABASE_LEASE_SECONDS": "10", "OPS_SUPABASE_ORPHAN_SECONDS": "20"},
     "must be at least three times OPS_SUPABASE_LEASE_SECONDS"),
])
def test_bad_supabase_settings_are_refused(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({**BASE, **env})


@pytest.fixture
def supabase_apps(supabase_db):
    """Two apps (as two processes) on the same Supabase, with slow dev ticks."""
    settings = make_settings(supabase_url=supabase_db.url, supabase_key=supabase_db.key,
                             dev_tick_seconds=0.3, supabase_poll_seconds=0.05,
                             supabase_lease_seconds=0.3, supabase_orphan_seconds=1.5)
    apps = [create_app(settings), create_app(settings)]
    yield apps
    for app in apps:
        app.extensions["services"].executor.shutdown(grace=5)
        app.extensions["services"].store.close()


@pytest.mark.live
def test_app_streams_and_cancels_across_apps(supabase_apps):
    first, second = (Admin(app.test_client()) for app in supabase_apps)
    assert first.get("/ops/stats").get_json()["store"] == "SupabaseStore"
    task = first.create(title="Build X")
    response = second.get(f"/ops/tasks/{task['id']}/stream")
    assert [e["kind"] for e in events(response.get_data(as_text=True))] == DEV_KINDS

    # Ticks long enough that the task is surely still running when the cancel arrives.
    runners = supabase_apps[0].extensions["services"].executor.runners
    runners["dev"] = DevRunner(tick_seconds=30, ticks=4)
    long = first.create(title="long")
    wait_until(lambda: second.get(f"/ops/tasks/{long['id']}").get_json()["status"] == "running")
    canceled = second.post(f"/ops/tasks/{long['id']}/cancel")
    assert canceled.status_code == 202 and canceled.get_json()["cancel_requested"]
    final = wait_until(lambda: (t := first.get(f"/ops/tasks/{long['id']}").get_json())
                       ["status"] != "running" and t, timeout=5)
    assert final["status"] == "canceled" and final["error"] == "canceled by admin"
    assert ADMIN not in str(final)


@pytest.mark.live
def test_a_create_sends_at_most_two_supabase_requests(supabase_apps, monkeypatch):
    """What ``POST /ops/tasks`` itself sends to Supabase, recorded on its own thread (the
    executor, the audit writer and the store's maintenance run on others): the task's row
    and its ``created`` event. The audit record is written later, in a batch."""
    import httpx

    sent = []
    send = httpx.Client.send

    def recording(client, request, **kwargs):
        if threading.get_ident() == caller:
            sent.append(f"{request.method} {request.url.path}")
        return send(client, request, **kwargs)

    admin = Admin(supabase_apps[0].test_client())
    admin.create(title="warm-up")  # clients are made on first use
    caller = threading.get_ident()
    monkeypatch.setattr(httpx.Client, "send", recording)
    admin.create(title="counted")
    assert sent == ["POST /rest/v1/va_tasks", "POST /rest/v1/va_task_events"]
