"""Retention: finished tasks older than the setting go, in batches; nothing running is touched."""

from __future__ import annotations

import pytest

from app.store import MemoryStore, TaskNotFound, TaskStatus
from app.store.retention import RetentionSweeper
from tests.support.api import ADMIN


def test_sweep_purges_old_finished_tasks_in_batches(clock):
    store = MemoryStore(clock=clock.now)
    old = [store.create_task(f"t{n}", None, "dev") for n in range(7)]
    for task in old:
        store.request_cancel(task.id)
    running = store.create_task("running", None, "dev")
    store.mark_running(running.id)
    assert store.get_task(old[-1].id).finished_at == clock.now()
    sweeper = RetentionSweeper(store, max_age=3600, interval=60, batch=3, clock=clock.now)
    assert sweeper.sweep() == 0  # they ended less than an hour ago
    clock.advance(2 * 3600)
    assert sweeper.sweep() == 7  # batches of 3, 3 and 1
    assert store.list_tasks(10) == [store.get_task(running.id)]
    assert store.get_task(running.id).status == TaskStatus.RUNNING
    with pytest.raises(TaskNotFound):
        store.get_task(old[0].id)


def test_retention_defaults():
    from app.config import Settings

    assert Settings.from_env({"SETTINGS_ADMIN_TOKEN": ADMIN}).retention_seconds == 86_400
    supabase = Settings.from_env({"SETTINGS_ADMIN_TOKEN": ADMIN, "SUPABASE_URL": "http://db",
                                  "SUPABASE_SERVICE_ROLE_KEY": "k"})
    assert supabase.retention_seconds is None
    assert Settings.from_env({"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_RETENTION_SECONDS": "0"}
                             ).retention_seconds is None
