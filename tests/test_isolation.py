"""A recipe's command is untrusted: it reaches no secret of the service by any route, and it
does not outlive the worker that started it. Real gunicorn, real users, real attacks."""

from __future__ import annotations

import json
import os
import pwd
import signal
from pathlib import Path

import pytest

from app.executor.runners.process import group_alive
from tests.support.api import ADMIN
from tests.support.live import GunicornServer
from tests.support.processes import wait_until
from tests.support.runners import RECIPES, log_lines, pids_in, recipe_user_env
from tests.support.sse import parse_messages
from tests.support.users import ThrowawayUser, interpreter_for, readable_copy, require_root

pytestmark = pytest.mark.live

# A distinct value for each secret, so that a leak says which one.
SECRETS = {"SETTINGS_ADMIN_TOKEN": "admin-7c1f3a9e5b2d4068ae13",
           "OPS_STREAM_SECRET": "stream-2b9e8d1c7a6f4e35b0c4",
           "OPS_METRICS_TOKEN": "metrics-5d3a0f2e9c8b4a17d6e2",
           "OPS_LLM_API_KEY": "sk-llm-8e6c4b2a0f9d4c53a1b7"}
# What the snoop recipe prints can be long: let whole lines through.
LOUD = {"OPS_RECIPE_MAX_LINE_BYTES": "1048576"}


def secret_env(recipes: Path) -> dict[str, str]:
    return {**SECRETS, "OPS_RECIPES": str(recipes), **LOUD,
            # The model server is never called: the key only has to be in the environment.
            "OPS_LLM_BASE_URL": "http://127.0.0.1:9/v1", "OPS_LLM_MODEL": "never-called"}


def run_recipe(server: GunicornServer, recipe: str) -> list[dict]:
    """Run a recipe to its end; its events, read from the task's stream."""
    task_id = server.admin.create(recipe, recipe=recipe)["id"]
    with server.admin.stream(task_id, timeout=60) as response:
        return [json.loads(m["data"]) for m in
                parse_messages(response.iter_lines(decode_unicode=True)) if "data" in m]


def assert_no_secret_reached(server: GunicornServer) -> None:
    """The snoop recipe and the reported attack find no secret; the snoop did look."""
    for recipe in ("parent-environ", "snoop"):
        events = run_recipe(server, recipe)
        assert events[-1]["kind"] in {"done", "failed"}, events[-1]
        text = json.dumps(events)
        leaked = [name for name, value in SECRETS.items() if value in text]
        assert not leaked, f"recipe {recipe} read {leaked}"
    lines = log_lines(events)
    # It could read /proc (its own entries at least), and nothing of its parents.
    assert any(line.startswith("environ ") and "PYTHONUNBUFFERED=1" in line for line in lines)
    worker, master = (int(line.split()[1].rstrip(":")) for line in lines
                      if line.startswith("mem "))
    assert (worker, master) == (server.worker_pids()[0], server.process.pid)
    for pid in (worker, master):
        assert f"mem {pid}: denied (Permission denied)" in lines
        assert f"ptrace {pid}: denied" in lines


def test_as_root_recipes_run_as_the_recipe_user_and_reach_no_secret():
    require_root()
    nobody = pwd.getpwnam("nobody")
    with readable_copy() as code, GunicornServer(
            {**secret_env(Path(code, "tests/support/recipes.toml")),
             "OPS_RECIPE_USER": "nobody"}, cwd=Path(code)) as server:
        assert_no_secret_reached(server)
        [identity] = log_lines(run_recipe(server, "identity"))
        assert json.loads(identity) == {
            "uid": nobody.pw_uid, "euid": nobody.pw_uid, "gid": nobody.pw_gid,
            "groups": [nobody.pw_gid], "home": nobody.pw_dir}


def test_as_an_ordinary_user_recipes_of_that_user_reach_no_secret():
    """The service and its recipes share one user: only non-dumpable processes stop them."""
    require_root()
    with ThrowawayUser() as user, readable_copy() as code:
        python, python_env = interpreter_for(user)
        env = {**secret_env(Path(code, "tests/support/recipes.toml")), **python_env}
        with GunicornServer(env, user=user, python=python, cwd=Path(code)) as server:
            assert_no_secret_reached(server)
            [identity] = log_lines(run_recipe(server, "identity"))
            assert json.loads(identity)["uid"] == user.pw_uid
            # Both gunicorn processes are non-dumpable: the kernel gives their /proc to root.
            for pid in (server.process.pid, *server.worker_pids()):
                assert os.stat(f"/proc/{pid}/environ").st_uid == 0


@pytest.mark.parametrize("env, message", [
    ({"SETTINGS_ADMIN_TOKEN": "k9x"},
     "SETTINGS_ADMIN_TOKEN must be at least 24 characters long outside dev mode; make one "
     "with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"),
    ({"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_RECIPES": str(RECIPES)},
     "OPS_RECIPE_USER is not set: as root, recipes must run as an unprivileged user"),
    ({"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_RECIPES": str(RECIPES), "OPS_RECIPE_USER": "root"},
     "OPS_RECIPE_USER must be an unprivileged user, not root"),
])
def test_refuses_to_start_with_a_one_line_error(env, message):
    if "OPS_RECIPES" in env:
        require_root()
    server = GunicornServer(env)
    try:
        with pytest.raises(AssertionError, match="gunicorn exited with 1"):
            server.start()
        errors = [line for line in server.log().splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and errors[0].startswith(f"error: {message}"), server.log()
    finally:
        server.close()


def test_dev_mode_starts_with_a_short_token_and_recipes_as_root():
    env = {"SETTINGS_ADMIN_TOKEN": "adm", "DEV_LOCAL_LLM": "1", "OPS_RECIPES": str(RECIPES)}
    with GunicornServer(env) as server:
        assert server.admin.get("/ops/recipes").status_code == 200
        if os.geteuid() == 0:
            assert "OPS_RECIPE_USER is not set" in server.log()


def test_a_killed_worker_takes_its_recipes_process_groups_with_it():
    env = {"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_RECIPES": str(RECIPES), **recipe_user_env()}
    pids: list[int] = []
    with GunicornServer(env) as server:
        try:
            task_id = server.admin.create("family", recipe="family")["id"]
            with server.admin.stream(task_id) as response:
                lines = []
                for message in parse_messages(response.iter_lines(decode_unicode=True)):
                    event = json.loads(message.get("data") or "{}")
                    if event.get("kind") == "log":
                        lines.extend(event["data"]["lines"])
                    if len(pids_in(lines)) == 2:
                        break
            pids = pids_in(lines)
            pgid = pids[0]  # the shell leads the recipe's group
            assert os.getpgid(pids[1]) == pgid and group_alive(pgid)
            [worker] = server.worker_pids()
            os.kill(worker, signal.SIGKILL)
            wait_until(lambda: not group_alive(pgid), timeout=10,
                       message=lambda: f"process group {pgid} to end")
            assert f"worker {worker} died with recipes running: killed process group(s) " \
                   f"{pgid}" in server.log()
        finally:
            if pids:  # the test failed: leave nothing running
                try:
                    os.killpg(pids[0], signal.SIGKILL)
                except ProcessLookupError:
                    pass
