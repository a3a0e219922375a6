"""The shared queue over the Supabase store, with gunicorn processes as deployed: every task
runs exactly once whichever process created it, restarts leave queued tasks to the others,
and pools keep recipes on the processes that serve them."""

from __future__ import annotations

import collections
import random
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.api import live_env
from tests.support.live import GunicornServer
from tests.support.processes import wait_until
from tests.support.supabase_fixtures import FAST_ENV

pytestmark = [pytest.mark.live, pytest.mark.slow]


def server_env(gateway, **overrides) -> dict[str, str]:
    return {**gateway.env, **FAST_ENV,
            **live_env(DEV_LOCAL_LLM="1", OPS_HEARTBEAT_SECONDS="1"), **overrides}


def query(postgres, gateway, sql: str, *params) -> list[tuple]:
    with postgres.connect(gateway.dbname) as conn:
        return conn.execute(sql, params).fetchall()


def statuses(postgres, gateway) -> collections.Counter:
    return collections.Counter(dict(query(postgres, gateway,
                                          "SELECT status, count(*) FROM va_tasks GROUP BY 1")))


def runs_by_worker(postgres, gateway) -> dict[str, int]:
    return dict(query(postgres, gateway, "SELECT data_json->>'worker', count(*) FROM "
                      "va_task_events WHERE kind = 'status' GROUP BY 1"))


def test_two_thousand_tasks_run_exactly_once_over_four_processes(supabase_db, postgres):
    # Leases as in production, in proportion: with the tests' 1.5 s, a busy machine can make
    # a task's first writes late enough for another process to take it for an orphan.
    env = server_env(supabase_db, OPS_DEV_TICKS="1", OPS_DEV_TICK_SECONDS="0",
                     OPS_QUEUE_SIZE="5000", OPS_WORKERS="4", OPS_SUPABASE_LEASE_SECONDS="2",
                     OPS_SUPABASE_ORPHAN_SECONDS="20", OPS_SUPABASE_POLL_SECONDS="0.5")
    with GunicornServer(env, workers=2) as one, GunicornServer(env, workers=2) as two:
        servers = [one, two]
        chooser = random.Random(7)
        targets = [chooser.choice(servers) for _ in range(2000)]
        with ThreadPoolExecutor(16) as pool:
            created = list(pool.map(lambda server: server.admin.create("one of many")["id"],
                                    targets))
        assert len(set(created)) == 2000
        wait_until(lambda: not {"queued", "running", "canceling"} & set(
            statuses(postgres, supabase_db)), timeout=600, interval=0.5,
            message=lambda: f"every task ended: {statuses(postgres, supabase_db)}")
        # Exactly once: one start and one end each, and nothing else left.
        twice = query(postgres, supabase_db,
                      "SELECT task_id, count(*) FROM va_task_events WHERE kind IN "
                      "('status', 'done', 'failed', 'canceled') GROUP BY task_id "
                      "HAVING count(*) <> 2")
        assert twice == []
        assert statuses(postgres, supabase_db) == {"done": 2000}
        # Spread over the four processes (every one of them ran its share).
        runs = runs_by_worker(postgres, supabase_db)
        pids = {pid for server in servers for pid in server.worker_pids()}
        assert {worker.split(":")[1] for worker in runs} == {str(pid) for pid in pids}
        assert sum(runs.values()) == 2000 and min(runs.values()) >= 20, runs
        listed = one.admin.get("/ops/workers").json()["workers"]
        assert {row["pid"] for row in listed if row["live"]} == pids


def test_a_stopped_and_a_killed_process_leave_their_queued_tasks_to_the_others(
        supabase_db, postgres):
    env = server_env(supabase_db, OPS_DEV_TICKS="4", OPS_DEV_TICK_SECONDS="0.5",
                     OPS_WORKERS="1")
    stopped, killed, survivor = (GunicornServer(env) for _ in range(3))
    try:
        for server in (stopped, killed, survivor):
            server.start()
        ids = [stopped.admin.create(f"task {n}")["id"] for n in range(4)]
        ids += [killed.admin.create(f"task {n}")["id"] for n in range(4, 8)]
        # One task runs in each process (one worker each); the other five wait in the queue.
        wait_until(lambda: statuses(postgres, supabase_db)["running"] == 3, timeout=20)
        running = {task_id: stopped.admin.task(task_id)["worker"] for task_id in ids
                   if stopped.admin.task(task_id)["status"] == "running"}
        assert len(set(running.values())) == 3
        gone = {str(pid) for server in (stopped, killed) for pid in server.worker_pids()}
        alive = {str(pid) for pid in survivor.worker_pids()}
        stopped.stop(signal.SIGTERM)
        killed.stop(signal.SIGKILL)

        def ended() -> list[dict]:
            tasks = [survivor.admin.task(task_id) for task_id in ids]
            return tasks if all(t["status"] in ("done", "failed") for t in tasks) else []

        tasks = wait_until(ended, timeout=120, interval=0.5)
        for task in tasks:
            if task["id"] in running and running[task["id"]].split(":")[1] in gone:
                # It ran in a process that went away: it ends failed, saying why.
                assert task["status"] == "failed", task
                assert task["error"] == "shutdown" or "orphaned" in task["error"], task
            else:
                # Queued when its creator went away (or running on the survivor): done there.
                assert task["status"] == "done", task
                assert task["worker"].split(":")[1] in alive, task
        assert sum(t["status"] == "done" for t in tasks) == 6
    finally:
        for server in (stopped, killed, survivor):
            server.close()



RECIPES = """
[recipes.deploy]
argv = ["true"]
pool = "deploy"

[recipes.build]
argv = ["true"]
"""


def test_a_deploy_pool_recipe_runs_only_where_the_pool_is_served(supabase_db, postgres,
                                                                  tmp_path):
    recipes = tmp_path / "recipes.toml"
    recipes.write_text(RECIPES)
    env = server_env(supabase_db, OPS_RECIPES=str(recipes), OPS_DEV_TICKS="1",
                     OPS_DEV_TICK_SECONDS="0.05", OPS_WORKERS="2")
    general = GunicornServer({**env, "OPS_POOLS": "default"})
    deployer = GunicornServer({**env, "OPS_POOLS": "deploy"})
    try:
        general.start()
        deployer.start()
        wait_until(lambda: len([row for row in general.admin.get("/ops/workers").json()[
            "workers"] if row["live"]]) == 2, timeout=10, message="both processes advertised")
        kinds = ["deploy", "build"] * 6
        made = {general.admin.create(f"{kind} {n}", recipe=kind)["id"]: kind
                for n, kind in enumerate(kinds)}
        wait_until(lambda: statuses(postgres, supabase_db)["done"] == len(made), timeout=60)
        ran_on = {str(pid): "general" for pid in general.worker_pids()}
        ran_on |= {str(pid): "deployer" for pid in deployer.worker_pids()}
        for task_id, kind in made.items():
            task = general.admin.task(task_id)
            assert task.get("pool") == ("deploy" if kind == "deploy" else None)
            assert ran_on[task["worker"].split(":")[1]] == (
                "deployer" if kind == "deploy" else "general"), task

        # With the deploying process gone, a deploy is still taken (a process did serve the
        # pool) but waits, saying why; the other process does not run it.
        deployer.stop(signal.SIGTERM)
        wait_until(lambda: not any(row["live"] and row["pools"] == ["deploy"] for row in
                                   general.admin.get("/ops/workers").json()["workers"]),
                   timeout=10)
        waiting = general.admin.create("deploy later", recipe="deploy")
        assert waiting["status"] == "queued"
        assert waiting["waiting_for"] == "no live server process serves the pool deploy"
        build = general.admin.create("build after", recipe="build")["id"]
        wait_until(lambda: general.admin.task(build)["status"] == "done", timeout=20)
        shown = general.admin.task(waiting["id"])
        assert shown["status"] == "queued" and shown["waiting_for"] == waiting["waiting_for"]
    finally:
        general.close()
        deployer.close()
