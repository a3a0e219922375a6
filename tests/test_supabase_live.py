"""gunicorn with gevent workers over the Supabase store (the gateway in front of PostgreSQL):
tasks shared across processes, restarts, outages, the request count of many subscribers,
and the start-up check."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from tests.support.api import live_env
from tests.support.live import GunicornServer
from tests.support.postgres import PostgresServer
from tests.support.processes import wait_until
from tests.support.sse import DEV_KINDS, events, parse_messages
from tests.support.supabase_fixtures import FAST_ENV, own_gateway

pytestmark = [pytest.mark.live, pytest.mark.slow]


def server_env(gateway, **overrides) -> dict[str, str]:
    env = {**gateway.env, **FAST_ENV, **live_env(DEV_LOCAL_LLM="1", OPS_DEV_TICK_SECONDS="0.2",
                                                 OPS_HEARTBEAT_SECONDS="1")}
    return {**env, **overrides}


def stream(server, task_id) -> list[dict]:
    """The whole SSE stream of a task (it ends after the terminal event)."""
    with server.admin.stream(task_id) as response:
        assert response.status_code == 200, response.text
        return events("".join(response.iter_content(chunk_size=None, decode_unicode=True)))


class StreamReader(threading.Thread):
    """Reads a task's stream in the background, event by event."""

    def __init__(self, server, task_id):
        super().__init__(daemon=True)
        self.admin, self.task_id = server.admin, task_id
        self.received: list[dict] = []

    def run(self) -> None:
        with self.admin.stream(self.task_id) as response:
            assert response.status_code == 200, response.text
            for message in parse_messages(response.iter_lines(decode_unicode=True)):
                if "data" in message:
                    self.received.append({"id": int(message["id"]),
                                          "kind": message["event"]})


def streams_in_threads(server, task_ids) -> list[list[dict]]:
    results: list = [None] * len(task_ids)

    def read(n, task_id):
        results[n] = stream(server, task_id)

    threads = [threading.Thread(target=read, args=(n, t)) for n, t in enumerate(task_ids)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def assert_complete(received: list[dict], kinds=DEV_KINDS) -> None:
    assert [e["kind"] for e in received] == kinds
    ids = [e["id"] for e in received]
    assert ids == sorted(set(ids))


def stored_kinds(postgres: PostgresServer, dbname: str, task_id: int) -> list[str]:
    with postgres.connect(dbname) as conn:
        rows = conn.execute("SELECT kind FROM va_task_events WHERE task_id = %s "
                            "AND kind <> 'lease' ORDER BY id", (task_id,)).fetchall()
    return [kind for (kind,) in rows]


def test_four_workers_share_tasks_and_a_cancel_crosses_servers(supabase_db):
    env = server_env(supabase_db)
    slow_env = server_env(supabase_db, OPS_DEV_TICK_SECONDS="5")
    with GunicornServer(env, workers=4) as server, GunicornServer(slow_env) as slow:
        ids = [server.admin.create(f"task {n}")["id"] for n in range(8)]
        for received in streams_in_threads(server, ids):
            assert_complete(received)
        for _ in range(4):  # new connections, answered by any worker
            listed = server.admin.get("/ops/tasks").json()
            assert sorted(t["id"] for t in listed["tasks"]) == sorted(ids)
            assert {t["status"] for t in listed["tasks"]} == {"done"}

        # A task running in another server is streamed and canceled through this one.
        long = slow.admin.create("long")["id"]
        wait_until(lambda: server.admin.task(long)["status"] == "running", timeout=10)
        watched = threading.Thread(target=lambda: results.append(stream(server, long)))
        results: list = []
        watched.start()
        asked = time.monotonic()
        response = server.admin.cancel(long)
        assert response.status_code == 202 and response.json()["cancel_requested"]
        wait_until(lambda: slow.admin.task(long)["status"] == "canceled", timeout=5)
        latency = time.monotonic() - asked
        watched.join(10)
        assert_complete(results[0], ["created", "status", "canceled"])
        print(f"\ncancel across servers took {latency:.2f}s (poll interval 0.1 s)")
        # The slow server's watcher saw the request at one of its polls (0.1 s apart), not
        # the runner at its next tick (5 s after the task started). How fast is for the
        # bench to say; this bound only tells the two apart, under any load.
        assert latency < 4.0, latency
        # Another process's answers may lag by one poll interval (its get_task cache).
        wait_until(lambda: server.admin.task(long)["error"] == "canceled by admin", timeout=2)


def test_restart_keeps_finished_tasks_and_fails_the_running_ones(supabase_db, postgres):
    env = server_env(supabase_db, OPS_DEV_TICK_SECONDS="0.5")
    server = GunicornServer(env, workers=2)
    try:
        server.start()
        finished = server.admin.create("finished")["id"]
        wait_until(lambda: server.admin.task(finished)["status"] == "done", timeout=10)
        running = [server.admin.create(f"running {n}")["id"] for n in range(2)]
        for task_id in running:
            wait_until(lambda task_id=task_id: server.admin.task(task_id)["status"] == "running",
                       timeout=10)
        server.stop(signal.SIGKILL)  # as a crash: nothing gets to end its tasks

        server.start()
        assert_complete(stream(server, finished))
        for task_id in running:
            ended = wait_until(
                lambda task_id=task_id: (t := server.admin.task(task_id))["status"] != "running"
                and t,
                timeout=15)
            assert ended["status"] == "failed" and "orphaned" in ended["error"]
            received = stream(server, task_id)
            assert received[-1]["kind"] == "failed"
            assert "orphaned" in received[-1]["data"]["data"]["reason"]
            assert stored_kinds(postgres, supabase_db.dbname, task_id)[-1] == "failed"
    finally:
        server.close()


def test_outage_answers_503_then_loses_and_repeats_nothing(postgres):
    with own_gateway(postgres) as gateway:
        env = server_env(gateway, OPS_DEV_TICK_SECONDS="0.5")
        with GunicornServer(env, workers=2) as server:
            ids = [server.admin.create(f"t{n}")["id"] for n in range(3)]
            for task_id in ids:
                wait_until(lambda task_id=task_id: server.admin.task(task_id)["status"]
                           == "running", timeout=10)
            readers = [StreamReader(server, task_id) for task_id in ids]
            for reader in readers:
                reader.start()
            wait_until(lambda: all(len(r.received) >= 2 for r in readers), timeout=10,
                       message="every stream past its status event")
            gateway.kill()
            response = server.admin.get("/ops/tasks")
            assert response.status_code == 503
            assert "unavailable" in response.json()["error"]
            assert response.headers["Retry-After"]
            # The outage lasts until the running tasks have had to keep events back.
            wait_until(lambda: "buffering the events" in server.log(), timeout=15)
            gateway.start()
            for reader in readers:
                reader.join(30)
                assert_complete(reader.received)
            for task_id in ids:
                assert stored_kinds(postgres, gateway.dbname, task_id) == DEV_KINDS
                assert server.admin.task(task_id)["status"] == "done"


def test_polls_do_not_grow_with_subscribers(supabase_db):
    env = server_env(supabase_db, OPS_DEV_TICK_SECONDS="0.5")
    reads = {}
    with GunicornServer(env, workers=1) as server:
        for subscribers in (1, 50):
            task_id = server.admin.create(f"watched by {subscribers}")["id"]
            supabase_db.reset_counts()
            for received in streams_in_threads(server, [task_id] * subscribers):
                assert_complete(received)
            reads[subscribers] = supabase_db.counts().get("GET va_task_events", 0)
    print(f"\nevent reads for one 2 s task, polled every 0.1 s: {reads}")
    assert 5 <= reads[1] <= 40, reads
    assert reads[50] <= reads[1] + 10, reads


def test_server_refuses_to_start_without_the_tables(postgres):
    with own_gateway(postgres, migrate=False) as gateway:
        server = GunicornServer(server_env(gateway), workers=2)
        try:
            with pytest.raises(AssertionError, match="gunicorn exited with 1"):
                server.start()
            errors = [line for line in server.log().splitlines() if line.startswith("error:")]
            assert errors == ["error: Supabase has no table public.va_tasks: apply "
                              "supabase/migrations/20261128000000_ops_tasks.sql (supabase db "
                              "push, or run it in the SQL editor); see docs/supabase.md"]
            assert gateway.key not in server.log()
        finally:
            server.close()
