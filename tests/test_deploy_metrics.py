"""``/metrics`` of real gunicorn: the values move as tasks run and streams open and close."""

from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.api import ADMIN, LiveAdmin
from tests.support.live import GunicornServer
from tests.support.processes import wait_until
from tests.support.sse import DEV_KINDS

pytestmark = pytest.mark.live

METRICS_TOKEN = "test-metrics-token-0123456789"
ENV = {"SETTINGS_ADMIN_TOKEN": ADMIN, "DEV_LOCAL_LLM": "1", "OPS_DEV_TICK_SECONDS": "0.3",
       "OPS_METRICS_TOKEN": METRICS_TOKEN}
DONE = ("ops_tasks_finished_total", (("status", "done"),))
CREATED = ("ops_tasks_created_total", (("runner", "dev"),))
EVENTS = ("ops_events_written_total", ())
RUNNING = ("ops_tasks_running", ())
QUEUED = ("ops_tasks_queued", ())
STREAMS = ("ops_streams_open", ())
CREATE_LATENCY = ("ops_http_request_duration_seconds_count",
                  (("endpoint", "/ops/tasks"), ("method", "POST"), ("status", "201")))


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """One scrape, on a new connection (so, under several workers, by any of them)."""
    response = requests.get(f"{url}/metrics", timeout=5,
                            headers={"Authorization": f"Bearer {METRICS_TOKEN}",
                                     "Connection": "close"})
    assert response.status_code == 200, response.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def check_metrics_follow_tasks(url: str, tasks: int) -> None:
    """Run ``tasks`` tasks while scraping; every figure moves as they run, then settles."""
    admin = LiveAdmin(url)
    before = scrape(url)
    ids = [admin.create("t")["id"] for _ in range(tasks)]
    during = wait_until(lambda: (m := scrape(url)).get(RUNNING) == tasks and m, timeout=5,
                        message=f"{tasks} running tasks in the metrics")
    assert during[QUEUED] == 0
    assert during.get(DONE, 0) == before.get(DONE, 0)

    streams = [admin.stream(task_id, timeout=10) for task_id in ids]
    try:
        wait_until(lambda: scrape(url).get(STREAMS) == tasks, timeout=5,
                   message="the open streams in the metrics")
        for stream in streams:
            assert b"event: done" in stream.content  # read to the end: the stream closes
    finally:
        for stream in streams:
            stream.close()

    # A stream can end (it sent `done`) before the task's last write returns and the task
    # leaves the running gauge, so wait for both.
    after = wait_until(lambda: (m := scrape(url)).get(STREAMS) == 0 and m.get(RUNNING) == 0
                       and m, timeout=5, message="the streams and tasks to end in the metrics")
    assert after[QUEUED] == 0
    assert after[CREATED] == before.get(CREATED, 0) + tasks
    assert after[DONE] == before.get(DONE, 0) + tasks
    assert after[EVENTS] == before.get(EVENTS, 0) + tasks * len(DEV_KINDS)
    assert after[CREATE_LATENCY] == before.get(CREATE_LATENCY, 0) + tasks


def test_metrics_follow_tasks_under_one_worker():
    with GunicornServer(ENV) as server:
        check_metrics_follow_tasks(server.url, tasks=2)
        assert requests.get(f"{server.url}/metrics", timeout=5).status_code == 401


def test_metrics_in_multiprocess_mode(tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR set, values go through its files, wiped at each start."""
    stale = tmp_path / "counter_999999.db"
    stale.write_bytes(b"a previous run")
    with GunicornServer({**ENV, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}) as server:
        assert not stale.exists()
        check_metrics_follow_tasks(server.url, tasks=1)
        assert {p.name for p in tmp_path.glob("*.db")} >= {
            f"counter_{pid}.db" for pid in server.worker_pids()}


def test_metrics_add_up_across_two_workers(supabase_env):
    """Under two workers any scrape reports the sum of both (multi-process mode).

    Two workers need a shared store (the in-process one refuses them): ``supabase_env`` is
    the environment of a server on the Supabase store."""
    with GunicornServer({**ENV, **supabase_env}, workers=2) as server:
        assert len(server.worker_pids()) == 2
        check_metrics_follow_tasks(server.url, tasks=4)
        values = {scrape(server.url)[DONE] for _ in range(6)}
        assert len(values) == 1, f"scrapes disagree: {values}"
