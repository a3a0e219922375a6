"""Soak: 2,000 dev tasks, 200 clients dropping and resuming; nothing lost, nothing leaked."""

from __future__ import annotations

import pytest
import requests

from live import GunicornServer, wait_until
from soak import process_usage, soak
from sse import DEV_KINDS

pytestmark = [pytest.mark.live, pytest.mark.slow]

ADMIN = "soak-admin-token"
ENV = {"SETTINGS_ADMIN_TOKEN": ADMIN, "DEV_LOCAL_LLM": "1", "OPS_DEV_TICK_SECONDS": "0.02",
       "OPS_HEARTBEAT_SECONDS": "0.5", "OPS_WORKERS": "50", "OPS_QUEUE_SIZE": "1000",
       "OPS_MAX_STREAMS": "900", "OPS_RETENTION_SECONDS": "20", "OPS_RETENTION_INTERVAL": "0.5",
       "OPS_ACCESS_LOG": "/dev/null"}


def quiet(server):
    """True once no stream is open and retention has emptied the store."""
    headers = {"X-Admin-Token": ADMIN}
    stats = requests.get(f"{server.url}/ops/stats", headers=headers, timeout=10).json()
    listed = requests.get(f"{server.url}/ops/tasks?limit=1", headers=headers, timeout=10).json()
    return stats["streams_open"] == 0 and stats["running"] == 0 and not listed["tasks"]


def test_soak_in_process_store():
    with GunicornServer(ENV) as server:
        [worker] = server.worker_pids()
        warm = soak(server.url, ADMIN, tasks=200, clients=200, expected=DEV_KINDS, seed=1)
        assert not warm.bad_sequences and not warm.server_errors
        wait_until(lambda: quiet(server), timeout=120, message="warm-up to settle")
        rss_before, fds_before = process_usage(worker)

        result = soak(server.url, ADMIN, tasks=2000, clients=200, expected=DEV_KINDS)
        assert result.tasks == 2000
        assert result.server_errors == []
        assert result.bad_sequences == []
        assert result.connections > 3000  # clients really dropped and resumed

        wait_until(lambda: quiet(server), timeout=120, message="streams and store to empty")
        rss_after, fds_after = process_usage(worker)
        print(f"\nsoak: {result.tasks} tasks, {result.connections} connections; worker RSS "
              f"{rss_before} -> {rss_after} KiB, fds {fds_before} -> {fds_after}")
        assert fds_after <= fds_before + 2
        assert rss_after <= rss_before * 1.15 + 4096, (rss_before, rss_after)
        assert "Traceback" not in server.log()
