"""The recipe runner with real subprocesses, on plain threads (no gevent)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

import pytest

from app.executor import build_runners
from app.recipes import RecipeBook, load_recipes
from tests.runner_contract import FailingRunnerContract, RunnerContract
from tests.support.api import Admin, make_settings
from tests.support.processes import ROOT, require_program
from tests.support.runners import HERE, RECIPES, Tasks, kill_leftovers, pids_in, process_alive


def with_this_interpreter(book: RecipeBook) -> RecipeBook:
    """The test recipes, run by this interpreter rather than whatever python3 is on PATH."""
    return RecipeBook(tuple(
        dataclasses.replace(r, argv=(sys.executable, *r.argv[1:])) if r.argv[0] == "python3"
        else r for r in book.recipes))


BOOK = with_this_interpreter(load_recipes(RECIPES))
EXAMPLE = load_recipes(ROOT / "docs" / "examples" / "recipes.toml")
GRACE = 0.5


def recipe_settings(**overrides):
    return make_settings(**{"dev_mode": False, "recipes": BOOK, "recipe_kill_grace": GRACE,
                            **overrides})


@pytest.fixture
def settings():
    return recipe_settings()


@pytest.fixture
def tasks(admin, app):
    return Tasks(admin, app)


@pytest.fixture
def make_tasks(make_app):
    """Tasks on an app with other settings."""
    def make(**overrides) -> Tasks:
        app = make_app(recipe_settings(**overrides))
        return Tasks(Admin(app.test_client()), app)
    return make


@pytest.fixture
def spawned():
    """Pids the test learns of; any still alive at the end is killed."""
    pids: list[int] = []
    yield pids
    kill_leftovers(pids)


def test_each_line_is_a_log_event_in_order(tasks):
    task_id = tasks.create(recipe="lines", params={"count": "50", "code": "0"})
    task = tasks.wait_finished(task_id)
    assert task["status"] == "done"
    assert (task["runner"], task["recipe"], task["params"]) == (
        "recipe", "lines", {"count": "50", "code": "0"})
    assert tasks.lines(task_id, "stdout") == [f"out {n}" for n in range(50)]
    assert tasks.lines(task_id, "stderr") == [f"err {n}" for n in range(50)]
    assert tasks.terminal(task_id)["data"] == {"exit_code": 0, "log": {
        "lines": 100, "bytes": sum(len(f"out {n}\n") * 2 for n in range(50))}}


def test_a_failing_command_fails_the_task_with_its_exit_code(tasks):
    task_id = tasks.create(recipe="lines", params={"count": "1", "code": "3"})
    assert tasks.wait_finished(task_id)["error"] == "exit code 3"
    assert tasks.terminal(task_id)["data"]["exit_code"] == 3


def test_output_arrives_while_the_command_runs(tasks, tmp_path):
    gate = tmp_path / "open"
    task_id = tasks.create(recipe="gate", params={"path": str(gate)})
    assert tasks.wait_lines(task_id, 1) == ["waiting"]
    assert tasks.get(task_id)["status"] == "running"
    gate.touch()
    assert tasks.wait_finished(task_id)["status"] == "done"
    assert tasks.lines(task_id) == ["waiting", "through"]


def test_cancel_ends_the_group_with_sigterm(tasks, spawned):
    task_id = tasks.create(recipe="sleep")
    spawned += pids_in(tasks.wait_lines(task_id, 1))
    tasks.admin.post(f"/ops/tasks/{task_id}/cancel")
    assert tasks.wait_finished(task_id)["status"] == "canceled"
    data = tasks.terminal(task_id)["data"]
    assert data["stopped_with"] == "SIGTERM"
    assert data["reason"] == "canceled by admin"
    assert not any(process_alive(pid) for pid in spawned)


def test_cancel_kills_a_child_that_ignores_sigterm(tasks, spawned):
    task_id = tasks.create(recipe="stubborn")
    spawned += pids_in(tasks.wait_lines(task_id, 2))
    assert len(spawned) == 2 and all(process_alive(pid) for pid in spawned)
    started = time.monotonic()
    tasks.admin.post(f"/ops/tasks/{task_id}/cancel")
    assert tasks.wait_finished(task_id)["status"] == "canceled"
    took = time.monotonic() - started
    assert tasks.terminal(task_id)["data"]["stopped_with"] == "SIGKILL"
    assert not any(process_alive(pid) for pid in spawned)
    assert GRACE <= took < GRACE + 5


@pytest.mark.parametrize("recipe, timeout, signal_name", [("slow", 0.5, "SIGTERM"),
                                                           ("slow-stubborn", 2, "SIGKILL")])
def test_the_recipe_timeout_fails_the_task(tasks, spawned, recipe, timeout, signal_name):
    task_id = tasks.create(recipe=recipe)
    task = tasks.wait_finished(task_id)
    spawned += pids_in(tasks.lines(task_id))
    assert task["status"] == "failed" and task["error"] == "timeout"
    data = tasks.terminal(task_id)["data"]
    assert (data["stopped_with"], data["timeout"]) == (signal_name, timeout)
    assert spawned and not any(process_alive(pid) for pid in spawned)


def test_the_task_timeout_stops_the_group(make_tasks, spawned):
    tasks = make_tasks(task_timeout=0.3)
    task_id = tasks.create(recipe="sleep")
    task = tasks.wait_finished(task_id)
    spawned += pids_in(tasks.lines(task_id))
    assert (task["status"], task["error"]) == ("failed", "timeout")
    assert tasks.terminal(task_id)["data"]["stopped_with"] == "SIGTERM"
    assert not any(process_alive(pid) for pid in spawned)


def test_shutdown_stops_running_recipes(make_tasks, spawned):
    tasks = make_tasks()
    task_id = tasks.create(recipe="stubborn")
    spawned += pids_in(tasks.wait_lines(task_id, 2))
    tasks.admin.client.application.extensions["services"].executor.shutdown(grace=5)
    data = tasks.terminal(task_id)["data"]
    assert (data["reason"], data["stopped_with"]) == ("shutdown", "SIGKILL")
    assert not any(process_alive(pid) for pid in spawned)


def test_processes_left_behind_are_stopped(tasks, spawned):
    task_id = tasks.create(recipe="leftover")
    task = tasks.wait_finished(task_id)
    spawned += pids_in(tasks.lines(task_id))
    assert task["status"] == "done" and len(spawned) == 1
    assert tasks.terminal(task_id)["data"]["stopped_leftovers"] == "SIGTERM"
    assert not process_alive(spawned[0])


def test_a_process_that_left_the_group_cannot_hold_the_task_open(tasks, spawned):
    task_id = tasks.create(recipe="escaper")
    task = tasks.wait_finished(task_id)
    spawned += pids_in(tasks.lines(task_id))
    assert task["status"] == "done"
    assert tasks.terminal(task_id)["data"]["output_cut"] is True


def test_long_lines_are_cut_with_a_marker(tasks):
    task_id = tasks.create(recipe="longline", params={"size": "100000"})
    assert tasks.wait_finished(task_id)["status"] == "done"
    logs = [e["data"] for e in tasks.events(task_id) if e["kind"] == "log"]
    assert tasks.lines(task_id) == ["x" * 4096 + " … [cut: 95,904 bytes]", "short",
                                    "no newline at the end"]
    assert logs[0]["cut"] == [0]
    assert tasks.terminal(task_id)["data"]["log"]["lines_cut"] == 1


def numbered(count: int) -> list[str]:
    """What the ``numbered`` recipe prints."""
    return [f"{n:07d} {'.' * 51}" for n in range(1, count + 1)] + ["error: the final line"]


def test_a_flood_keeps_every_line_in_few_events(tasks):
    task_id = tasks.create(recipe="numbered", params={"count": "100000"})
    assert tasks.wait_finished(task_id, timeout=60)["status"] == "done"
    events = tasks.events(task_id)
    assert tasks.lines(task_id) == numbered(100_000)  # numbers checked consecutive too
    logs = [e["data"] for e in events if e["kind"] == "log"]
    assert logs[-1]["lines"][-1] == "error: the final line"
    assert len(logs) <= 200 and all(len(d["lines"]) <= 1000 for d in logs)
    assert not {"log_cut", "log_held"} & {e["kind"] for e in events}
    assert tasks.terminal(task_id)["data"]["log"] == {"lines": 100_001,
                                                     "bytes": 100_000 * 60 + 22}
    text = tasks.admin.get(f"/ops/tasks/{task_id}/log")
    assert text.status_code == 200 and text.mimetype == "text/plain"
    assert text.get_data(as_text=True) == "\n".join(numbered(100_000)) + "\n"


def test_past_the_cap_the_head_and_the_tail_are_kept(make_tasks):
    tasks = make_tasks(log_max_bytes=64 * 1024)  # a head of 48 KiB, a tail of 16 KiB
    task_id = tasks.create(recipe="numbered", params={"count": "5000"})
    assert tasks.wait_finished(task_id)["status"] == "done"
    events = tasks.events(task_id)
    (cut,) = [e["data"] for e in events if e["kind"] == "log_cut"]
    head, tail = 49152 // 60, 16384 // 60  # lines of 60 bytes in each
    assert (cut["after_line"], cut["lines_left_out"]) == (head, 5001 - head - tail)
    assert cut["bytes_left_out"] == (5000 - head - tail + 1) * 60
    lines = tasks.lines(task_id)  # the numbers jump by exactly lines_left_out
    expected = numbered(5000)
    assert lines == expected[:head] + expected[-tail:]
    assert lines[-1] == "error: the final line"
    kinds = [e["kind"] for e in events]
    assert kinds.index("log_held") < kinds.index("log_cut") < len(kinds) - 2
    summary = events[-1]["data"]["log"]
    assert (summary["lines"], summary["lines_left_out"]) == (5001, cut["lines_left_out"])
    text = tasks.admin.get(f"/ops/tasks/{task_id}/log").get_data(as_text=True).splitlines()
    assert text[:head] == expected[:head] and text[head + 1:] == expected[-tail:]
    assert text[head] == (f"[… {cut['lines_left_out']:,} lines ({cut['bytes_left_out']:,} "
                          f"bytes) left out: lines {head + 1:,} to "
                          f"{head + cut['lines_left_out']:,} …]")


def test_a_slow_store_slows_the_command_and_loses_nothing(tasks, monkeypatch):
    store = tasks.admin.client.application.extensions["services"].store
    writes = []
    append_events = store.append_events

    def slow(task_id, events):
        writes.append(len(events))
        time.sleep(0.2)  # far slower than the command: the pipe fills, the command waits
        return append_events(task_id, events)

    monkeypatch.setattr(store, "append_events", slow)
    task_id = tasks.create(recipe="flood", params={"count": "20000"})
    task = tasks.wait_finished(task_id, timeout=60)
    assert task["status"] == "done"
    assert "output_cut" not in tasks.terminal(task_id)["data"]  # drained past the grace
    assert tasks.lines(task_id) == [f"line {n}" for n in range(20000)]
    assert len(writes) <= 40  # full batches, not a write per read


def test_the_command_gets_a_clean_environment(tasks, monkeypatch):
    secrets = {"SETTINGS_ADMIN_TOKEN": "admin-secret-1", "OPS_STREAM_SECRET": "stream-secret-2",
               "SUPABASE_SERVICE_ROLE_KEY": "supabase-secret-3",
               "OPS_LLM_API_KEY": "llm-secret-4", "UNRELATED_SETTING": "not-passed-5"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    task_id = tasks.create(recipe="env")
    assert tasks.wait_finished(task_id)["status"] == "done"
    (line,) = tasks.lines(task_id)
    env = json.loads(line)
    assert not set(secrets) & set(env)
    assert not any(value in line for value in secrets.values())
    assert env["RECIPE_STAGE"] == "from the recipe" and env["LANG"] == "C.UTF-8"
    assert env["PATH"].endswith(os.environ["PATH"])  # a python3 shim (pyenv) may prepend


def test_parameters_are_whole_argv_elements(tasks):
    ref = "v1 2; rm -rf / $(id) `id` && echo '\"*"
    task_id = tasks.create(recipe="argv", params={"ref": ref, "other": "abc"})
    assert tasks.wait_finished(task_id)["status"] == "done"
    assert json.loads(tasks.lines(task_id)[0]) == ["--ref", ref, ref, "x{ref}", "abc"]


def test_a_relative_cwd_is_under_the_recipe_file(tasks):
    task_id = tasks.create(recipe="cwd")
    assert tasks.wait_finished(task_id)["status"] == "done"
    assert tasks.lines(task_id) == [str(HERE)]


def test_death_by_signal_is_named(tasks):
    task_id = tasks.create(recipe="signal")
    assert tasks.wait_finished(task_id)["error"] == "killed by SIGUSR1"


def test_a_missing_program_fails_the_task(tasks):
    task_id = tasks.create(recipe="missing")
    task = tasks.wait_finished(task_id)
    assert task["error"] == "could not start /nonexistent/program: No such file or directory"


def test_the_example_recipes_run(make_tasks, tmp_path):
    require_program("git")
    build, deploy = EXAMPLE.recipes
    # As in docs/examples/recipes.toml, but compiling into the test's own directory.
    build = dataclasses.replace(build, env=(("PYTHONPYCACHEPREFIX", str(tmp_path)),))
    tasks = make_tasks(recipes=RecipeBook((build, deploy)))
    built = tasks.create(recipe="build")
    deployed = tasks.create(recipe="deploy", params={"service": "api", "ref": "HEAD"})
    refused = tasks.create(recipe="deploy", params={"service": "web", "ref": "no-such-ref"})
    assert tasks.wait_finished(built)["status"] == "done"
    assert "Compiling 'app/recipes.py'..." in tasks.lines(built)
    assert any(tmp_path.rglob("recipes.*.pyc"))
    assert tasks.wait_finished(deployed)["status"] == "done"
    assert tasks.lines(deployed, "stdout")[-1].startswith("api is at ")
    assert tasks.lines(deployed, "stderr") == ["warning: api was rehearsed, not deployed"]
    assert tasks.wait_finished(refused)["error"] == "exit code 1"
    assert tasks.lines(refused, "stderr")[0].startswith("error: no-such-ref is not a commit")


class TestRecipeRunnerContract(RunnerContract, FailingRunnerContract):
    """The runner contract (tests/runner_contract.py), with real child processes."""

    @pytest.fixture
    def runner(self):
        return build_runners(make_settings(recipes=BOOK, recipe_kill_grace=GRACE))["recipe"]

    @pytest.fixture
    def jobs(self):
        def lines(code):
            return ("lines", None, {"recipe": "lines", "params": {"count": "2", "code": code}})

        return {"quick": lines("0"), "failing": lines("3"),
                "long": ("sleep", None, {"recipe": "sleep", "params": {}})}
