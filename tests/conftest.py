"""Fixtures shared by every test: an app on the in-process store, its client, a fake clock."""

from __future__ import annotations

import os

import pytest

from app import create_app
from tests.support.api import Admin, make_settings
from tests.support.clock import FakeClock

# PostgreSQL and the PostgREST stand-in, for the Supabase store's tests.
from tests.support.supabase_fixtures import postgres, supabase_db, supabase_env, supabase_gateway  # noqa: F401


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


@pytest.fixture
def admin(client):
    return Admin(client)


@pytest.fixture
def make_executor():
    """A factory: an Executor over a MemoryStore running ``scripts`` (title → callable) with
    the test settings' pool; every executor made is shut down afterwards."""
    from app.executor import Executor
    from app.store import MemoryStore
    from tests.support.runners import ScriptedRunner

    made = []

    def build(scripts, **options):
        settings = make_settings()
        options = {"workers": settings.workers, "queue_size": settings.queue_size, **options}
        executor = Executor(MemoryStore(), {"scripted": ScriptedRunner(scripts)}, **options)
        made.append(executor)
        return executor

    yield build
    for executor in made:
        executor.shutdown(grace=5)


@pytest.fixture
def clock():
    """A FakeClock: ``clock()`` seconds, ``clock.now()`` a datetime, ``clock.advance(s)``."""
    return FakeClock()


@pytest.fixture
def fake_llm():
    """A loopback OpenAI-compatible model server (tests/support/fake_llm.py) that wants an
    API key."""
    from tests.support.fake_llm import FakeLLM

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


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium, one per test module."""
    from tests.support.browser import chromium

    with chromium() as running:
        yield running


@pytest.fixture
def open_dashboard(browser):
    """``open_dashboard(server, viewport=DESKTOP, token=None, headers=None)``: a new tab on
    the server's dashboard, signed in when ``token`` is given, sending ``headers`` with every
    request; every tab is closed after the test."""
    from tests.support.browser import DESKTOP, Dashboard

    tabs = []

    def open_tab(server, viewport=DESKTOP, token=None, headers=None):
        tab = Dashboard(browser, server.url, viewport, headers)
        tabs.append(tab)
        tab.open()
        if token is not None:
            tab.sign_in(token)
            tab.signed_in()
        return tab

    yield open_tab
    for tab in tabs:
        tab.close()
