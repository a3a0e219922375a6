"""Soak: thousands of dev tasks, 200 clients dropping and resuming; nothing lost, nothing
leaked.

Run against both stores: the in-process one (one worker, 2,000 tasks) and Supabase (two
workers through the PostgREST stand-in over real PostgreSQL, 500 tasks: the stand-in, a
Python server, is what limits its pace, and tasks in the thousands over several processes
are tests/test_shared_queue.py's)."""

from __future__ import annotations

import pytest

from tests.support.api import ADMIN
from tests.support.live import GunicornServer
from tests.support.processes import wait_until
from tests.support.soak import process_usage, soak
from tests.support.sse import DEV_KINDS

pytestmark = [pytest.mark.live, pytest.mark.slow]

ENV = {"SETTINGS_ADMIN_TOKEN": ADMIN, "DEV_LOCAL_LLM": "1", "OPS_DEV_TICK_SECONDS": "0.02",
       "OPS_HEARTBEAT_SECONDS": "0.5", "OPS_WORKERS": "50", "OPS_QUEUE_SIZE": "1000",
       "OPS_MAX_STREAMS": "900", "OPS_RETENTION_SECONDS": "20", "OPS_RETENTION_INTERVAL": "0.5"}


TASKS = {"memory": 2000, "supabase": 500}


@pytest.fixture(params=["memory", "supabase"])
def server(request):
    """A server, and whether its memory holds the tasks (then retention must empty it)."""
    if request.param == "memory":
        env, workers = ENV, 1
    else:  # the tasks live in PostgreSQL; a process keeps no more than caches
        env, workers = {**ENV, **request.getfixturevalue("supabase_env"),
                        "OPS_RETENTION_SECONDS": "0", "OPS_SUPABASE_LEASE_SECONDS": "2",
                        "OPS_SUPABASE_ORPHAN_SECONDS": "30"}, 2
    with GunicornServer(env, workers=workers) as running:
        yield running, request.param == "memory"


def listed(server, query):
    return server.admin.get(f"/ops/tasks?limit=1&{query}").json()["tasks"]


def quiet(server, in_memory):
    """True once no task is queued or running (and, in memory, retention emptied it)."""
    if in_memory:
        return not listed(server, "")
    return not listed(server, "status=running") and not listed(server, "status=queued")


def usage(server):
    return {pid: process_usage(pid) for pid in server.worker_pids()}


def settled(server, before):
    """The usage of every worker once its descriptors are back to where they were (closed
    streams are noticed at the next heartbeat), or None."""
    now = usage(server)
    if now.keys() == before.keys() and all(now[p][1] <= before[p][1] + 2 for p in now):
        return now
    return None


def test_soak(server):
    server, in_memory = server
    # Warm up at a scale that fills what a process keeps (in memory: the tasks of the last
    # retention period), so that the baseline is a steady state and growth past it a leak.
    warm = soak(server.url, ADMIN, tasks=1000 if in_memory else 200, clients=200,
                expected=DEV_KINDS, seed=1)
    assert not warm.bad_sequences and not warm.server_errors
    wait_until(lambda: quiet(server, in_memory), timeout=120, message="warm-up to settle")
    before = usage(server)

    tasks = TASKS["memory" if in_memory else "supabase"]
    result = soak(server.url, ADMIN, tasks=tasks, clients=200, expected=DEV_KINDS)
    assert result.tasks == tasks
    assert result.server_errors == []
    assert result.bad_sequences == []
    assert result.connections > tasks * 1.5  # clients really dropped and resumed

    wait_until(lambda: quiet(server, in_memory), timeout=120, message="the store to settle")
    after = wait_until(lambda: settled(server, before), timeout=60,
                       message=f"descriptors back to {before}")  # and no worker died
    print(f"\nsoak: {result.tasks} tasks, {result.connections} connections; "
          f"worker (RSS KiB, fds) before {before} after {after}")
    for pid, (rss_before, _) in before.items():
        assert after[pid][0] <= rss_before * 1.15, (pid, rss_before, after[pid][0])
    assert "Traceback" not in server.log()
