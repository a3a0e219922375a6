"""Concurrency groups across processes: two gunicorn servers (gevent workers) over one
Supabase database (the gateway in front of PostgreSQL). Deploys of one service created on
both servers never overlap and start in creation order; a lock left behind by a worker that
died is taken over once the orphan sweep has ended its task."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest

from tests.support.live import GunicornServer
from tests.support.processes import wait_until
from tests.support.runners import recipe_user_env
from tests.test_concurrency_groups import in_order, recipe_file
from tests.test_supabase_live import server_env

pytestmark = [pytest.mark.live, pytest.mark.slow]
TERMINAL = {"done", "failed", "canceled"}


@pytest.fixture
def open_tmp_path():
    """A temporary directory the recipe user can look into (pytest's tmp_path is private)."""
    with tempfile.TemporaryDirectory() as path:
        os.chmod(path, 0o755)
        yield Path(path)


@pytest.fixture
def servers(supabase_db, open_tmp_path):
    """Two servers running the test recipes (real commands, not dev mode) on one database."""
    env = server_env(supabase_db, DEV_LOCAL_LLM="0",
                     OPS_RECIPES=str(recipe_file(open_tmp_path, python="python3")),
                     OPS_RECIPE_KILL_GRACE_SECONDS="0.5", **recipe_user_env())
    with GunicornServer(env) as first, GunicornServer(env) as second:
        yield first, second


def deploy(server, gate: Path, service: str = "api") -> int:
    return server.admin.create(f"deploy {service}", recipe="deploy",
                               params={"service": service, "gate": str(gate)})["id"]


def status(server, task_id: int) -> str:
    return server.admin.task(task_id)["status"]


def ended(server, task_id: int) -> dict:
    return wait_until(lambda: (t := server.admin.task(task_id))["status"] in TERMINAL and t,
                      timeout=30, message=f"task {task_id} to end")


def test_deploys_created_on_two_servers_never_overlap(servers, open_tmp_path):
    first, second = servers
    gates = [open_tmp_path / f"gate-{n}" for n in range(4)]
    ids = [deploy(server, gate) for server, gate in zip([first, second] * 2, gates)]
    wait_until(lambda: status(first, ids[0]) == "running", timeout=20)
    other = deploy(second, open_tmp_path / "gate-web", service="web")
    (open_tmp_path / "gate-web").touch()
    assert ended(second, other)["status"] == "done"  # another group runs meanwhile
    for task_id in ids[1:]:
        seen = first.admin.task(task_id)  # whichever server is asked
        assert (seen["status"], seen["concurrency_group"]) == ("queued", "deploy-api")
    wait_until(lambda: second.admin.task(ids[1])["waiting_for"] == ids[0], timeout=10)
    for gate in reversed(gates):
        gate.touch()
    tasks = [ended(first, task_id) for task_id in ids]
    assert [t["status"] for t in tasks] == ["done"] * 4
    in_order(tasks)  # one at a time, in creation order, whichever server runs each


def test_a_lock_left_by_a_dead_worker_is_taken_over(servers, open_tmp_path):
    first, second = servers
    held = deploy(first, open_tmp_path / "never")
    wait_until(lambda: status(first, held) == "running", timeout=20)
    waiting = deploy(second, open_tmp_path / "gate")
    wait_until(lambda: second.admin.task(waiting)["waiting_for"] == held, timeout=10)
    [worker] = first.worker_pids()
    os.kill(worker, signal.SIGKILL)  # dies holding the group; its master starts another
    orphan = ended(second, held)
    assert orphan["status"] == "failed" and orphan["error"].startswith("orphaned")
    running = wait_until(lambda: (t := second.admin.task(waiting))["status"] == "running"
                         and t, timeout=20, message="the waiting deploy to take the group")
    (open_tmp_path / "gate").touch()
    done = ended(second, waiting)
    assert done["status"] == "done"
    in_order([orphan, running])
