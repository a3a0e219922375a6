"""Fixtures for the Supabase store's tests: PostgreSQL, the PostgREST stand-in, stores.

One PostgreSQL and one gateway serve the whole session; each test that asks for
``supabase_db`` gets the tables emptied (ids from 1 again) and the request counts zeroed.
Tests that stop the gateway start their own with :func:`own_gateway`.
"""

from __future__ import annotations

import contextlib
import itertools

import pytest

from app.store.supabase import SupabaseStore

from .api import make_settings
from .gateway import GatewayProcess
from .postgres import PostgresServer

FAST = dict(poll_seconds=0.05, timeout=2.0, lease_seconds=0.3, orphan_seconds=1.5)


def store_options(**overrides) -> dict:
    """SupabaseStore's keyword arguments: the settings' defaults, then ``overrides``."""
    settings = make_settings()
    return {"poll_seconds": settings.supabase_poll_seconds,
            "timeout": settings.supabase_timeout_seconds,
            "lease_seconds": settings.supabase_lease_seconds,
            "orphan_seconds": settings.supabase_orphan_seconds,
            "outbox_events": settings.supabase_outbox_events, **overrides}
_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the whole test session."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def supabase_gateway(postgres):
    """The gateway over a migrated database ``ops``, for the whole session."""
    postgres.create_database("ops")
    with GatewayProcess(postgres.dsn("ops")) as gateway:
        gateway.dbname = "ops"
        yield gateway


@pytest.fixture
def supabase_db(postgres, supabase_gateway):
    """The session's gateway over empty tables."""
    with postgres.connect(supabase_gateway.dbname) as conn:
        conn.execute("TRUNCATE va_workers, va_notifications, va_audit, va_idempotency_keys, "
                     "va_concurrency_locks, va_task_cancels, va_task_events, va_tasks "
                     "RESTART IDENTITY")
    supabase_gateway.reset_counts()
    return supabase_gateway


# The Supabase store's settings for a live server, with the fast timings tests want.
FAST_ENV = {"OPS_SUPABASE_POLL_SECONDS": "0.1", "OPS_SUPABASE_LEASE_SECONDS": "0.3",
            "OPS_SUPABASE_ORPHAN_SECONDS": "1.5", "OPS_SUPABASE_TIMEOUT_SECONDS": "2"}


@pytest.fixture
def supabase_env(supabase_db):
    """The environment that puts a live server on the Supabase store (empty tables)."""
    return {**supabase_db.env, **FAST_ENV}


@contextlib.contextmanager
def own_gateway(postgres, migrate: bool = True):
    """A gateway over a new database of its own (to kill, or to leave unmigrated)."""
    name = postgres.create_database(f"ops_{next(_names)}", migrate=migrate)
    with GatewayProcess(postgres.dsn(name)) as gateway:
        gateway.dbname = name
        yield gateway


@contextlib.contextmanager
def open_store(gateway: GatewayProcess, **options):
    """A SupabaseStore on the gateway (fast timings unless overridden), closed afterwards."""
    store = SupabaseStore(gateway.url, gateway.key, **store_options(**{**FAST, **options}))
    try:
        yield store
    finally:
        store.close()
