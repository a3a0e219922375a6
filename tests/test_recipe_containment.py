"""What keeps a recipe in its place, without gunicorn: the record of its process group, its
death with the worker's, its user; the live attacks are in test_isolation.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from app import group_records
from app.executor.runners.process import group_alive
from app.group_records import GroupRecords
from app.isolation import RecipeUser
from app.recipes import load_recipes
from tests.support.api import Admin, make_settings
from tests.support.processes import ROOT, wait_until
from tests.support.runners import RECIPES, Tasks, pids_in
from tests.support.users import require_root


@pytest.fixture
def records():
    made = GroupRecords.create()
    yield made
    made.remove_directory()


@pytest.fixture
def group():
    """A sleeping shell and its child, in a process group of their own; its id."""
    shell = subprocess.Popen(["sh", "-c", "sleep 600 & wait"], start_new_session=True)
    yield shell.pid
    try:
        os.killpg(shell.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    shell.wait()


def test_the_directory_is_private(records):
    assert os.stat(records.directory).st_mode & 0o777 == 0o700


def test_a_dead_workers_groups_are_killed_and_forgotten(records, group):
    records.add(group)
    assert records.kill_groups_of(os.getpid() + 1) == []  # another worker's: not these
    assert group_alive(group)
    assert records.kill_groups_of(os.getpid()) == [group]
    wait_until(lambda: not group_alive(group), timeout=10, message=f"group {group} to end")
    assert os.listdir(records.directory) == []


def test_a_group_stopped_by_its_worker_is_forgotten(records, group):
    records.add(group)
    records.discard(group)
    records.discard(group)  # twice is fine
    assert records.kill_groups_of(os.getpid()) == []
    assert group_alive(group)


def test_a_recipe_dies_with_the_process_that_started_it():
    """Not only when the worker stops it: also when the worker is gone (kill -9)."""
    code = ("import sys; from app.executor.runners.process import Child; "
            "child = Child(['sleep', '600'], cwd=None, env={}); print(child.pgid)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True, timeout=30)
    pgid = int(done.stdout)
    try:
        wait_until(lambda: not group_alive(pgid), timeout=10, message=f"sleep {pgid} to die")
    finally:
        if group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)


def recipe_app(make_app, **overrides):
    return make_app(make_settings(dev_mode=False, recipes=load_recipes(RECIPES), **overrides))


def test_the_runner_records_each_group_while_it_runs(monkeypatch, make_app, records):
    monkeypatch.setattr(group_records, "_installed", records)
    app = recipe_app(make_app)
    tasks = Tasks(Admin(app.test_client()), app)
    task_id = tasks.create(recipe="sleep")
    [pgid] = pids_in(tasks.wait_lines(task_id, 1))
    assert os.listdir(records.directory) == [f"{os.getpid()}.{pgid}"]
    tasks.admin.post(f"/ops/tasks/{task_id}/cancel")
    assert tasks.wait_finished(task_id)["status"] == "canceled"
    assert os.listdir(records.directory) == []


def test_as_root_the_command_runs_as_the_recipe_user(make_app):
    require_root()
    nobody = RecipeUser.lookup("nobody")
    # The file's own python3: this interpreter may be out of the recipe user's reach.
    app = recipe_app(make_app, recipe_user=nobody)
    tasks = Tasks(Admin(app.test_client()), app)
    task_id = tasks.create(recipe="identity")
    assert tasks.wait_finished(task_id)["status"] == "done", tasks.events(task_id)
    assert json.loads(tasks.lines(task_id)[0]) == {
        "uid": nobody.uid, "euid": nobody.uid, "gid": nobody.gid, "groups": [nobody.gid],
        "home": nobody.home}


def test_the_gunicorn_config_makes_the_master_non_dumpable():
    code = ("import runpy; from app.isolation import is_dumpable; "
            "print(is_dumpable()); runpy.run_path('gunicorn.conf.py'); print(is_dumpable())")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == ["True", "False"]
