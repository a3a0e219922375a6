"""Fixtures shared by every test: an app on the in-process store, its client, a fake clock."""

from __future__ import annotations

import os

import pytest

from app import Settings, create_app
# PostgreSQL and the PostgREST stand-in, for the Supabase store's tests.
from supabase_fixtures import (postgres, supabase_db, supabase_env,  # noqa: F401
                               supabase_gateway)

ADMIN = "test-admin-token"
SECRET = "test-stream-secret-0123456789"


def make_settings(**overrides) -> Settings:
    values = dict(admin_token=ADMIN, dev_mode=True, stream_secrets=(SECRET,),
                  dev_tick_seconds=0.01, heartbeat_seconds=0.2, workers=4, queue_size=10)
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings():
    return make_settings()


@pytest.fixture
def app(settings):
    app = create_app(settings)
    yield app
    app.extensions["services"].executor.shutdown(grace=5)


@pytest.fixture
def make_app():
    """A factory: an app from the given settings; every app made is shut down afterwards."""
    apps = []

    def build(settings):
        app = create_app(settings)
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["services"].executor.shutdown(grace=5)


@pytest.fixture
def admin_for(make_app):
    """A factory: an Admin client on a new app with these settings overrides."""
    return lambda **overrides: Admin(make_app(make_settings(**overrides)).test_client())


@pytest.fixture
def client(app):
    return app.test_client()


class Admin:
    """Calls the API as an admin through the test client."""

    def __init__(self, client):
        self.client = client
        self.headers = {"X-Admin-Token": ADMIN}

    def create(self, title="Build X", **fields):
        response = self.client.post("/ops/tasks", json={"title": title, **fields},
                                    headers=self.headers)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def get(self, path, headers=None, **kwargs):
        return self.client.get(path, headers={**self.headers, **(headers or {})}, **kwargs)

    def post(self, path, headers=None, **kwargs):
        return self.client.post(path, headers={**self.headers, **(headers or {})}, **kwargs)


@pytest.fixture
def admin(client):
    return Admin(client)


@pytest.fixture
def fake_llm():
    """A loopback OpenAI-compatible model server (tests/fake_llm.py) that wants an API key."""
    from fake_llm import FakeLLM

    with FakeLLM(api_key="sk-test-0123456789abcdef") as server:
        yield server


def pytest_sessionfinish(session, exitstatus):
    """Under CI a skipped test is a missing service, and so a failure."""
    if os.environ.get("CI") != "true":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"CI=true: {len(skipped)} test(s) skipped; failing the run", red=True)
        session.exitstatus = 1
