"""Helpers for the runner tests: tasks through the API, their events, and real processes."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from .processes import wait_until

HERE = Path(__file__).resolve().parent
RECIPES = HERE / "recipes.toml"
TERMINAL = {"done", "failed", "canceled"}


class Tasks:
    """Creates tasks as an admin and reads what they did, through one app."""

    def __init__(self, admin, app):
        self.admin = admin
        self.store = app.extensions["services"].store

    def create(self, title="Run it", **fields) -> int:
        return self.admin.create(title, **fields)["id"]

    def get(self, task_id: int) -> dict:
        return self.admin.get(f"/ops/tasks/{task_id}").get_json()

    def wait_finished(self, task_id: int, timeout: float = 20) -> dict:
        return wait_until(lambda: (t := self.get(task_id))["status"] in TERMINAL and t,
                          timeout=timeout, message=f"task {task_id} to finish")

    def events(self, task_id: int) -> list[dict]:
        found, last = [], 0
        while page := self.store.events_after(task_id, last, 1000):
            found += [{"kind": e.kind, "data": e.data} for e in page]
            last = page[-1].id
        return found

    def terminal(self, task_id: int) -> dict:
        event = self.events(task_id)[-1]
        assert event["kind"] in TERMINAL, event
        return event

    def lines(self, task_id: int, stream: str | None = None) -> list[str]:
        return log_lines(self.events(task_id), stream)

    def wait_lines(self, task_id: int, count: int, timeout: float = 20) -> list[str]:
        return wait_until(lambda: len(lines := self.lines(task_id)) >= count and lines,
                          timeout=timeout, message=f"{count} log lines of task {task_id}")


def recipe_user_env() -> dict[str, str]:
    """What a live server with recipes needs outside dev mode: run as root (as tests and CI
    do), it must name an unprivileged user for its recipes."""
    return {"OPS_RECIPE_USER": "nobody"} if os.geteuid() == 0 else {}


def log_lines(events: list[dict], stream: str | None = None) -> list[str]:
    """The lines of ``log`` events (of one stream if given), checking that their numbers
    follow each other with no gap but the ones ``log_cut`` events account for."""
    lines, expected = [], 1
    for event in events:
        if event["kind"] == "log_cut":
            expected += event["data"]["lines_left_out"]
        if event["kind"] != "log":
            continue
        data = event["data"]
        assert data["first_line"] == expected, (data["first_line"], expected)
        expected += len(data["lines"])
        if stream in (None, data["stream"]):
            lines += data["lines"]
    return lines


def pids_in(lines: list[str]) -> list[int]:
    """The pids a recipe_child printed (``pid N`` and ``child N`` lines)."""
    return [int(line.split()[1]) for line in lines if line.split()[0] in {"pid", "child"}]


def process_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (which runs nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rpartition(b")")[2].split()[0] not in (b"Z", b"X")


def kill_leftovers(pids) -> None:
    """Cleanup after a failed test: no process of ours outlives it."""
    for pid in pids:
        try:
            ours = b"recipe_child.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            ours = False
        if ours and process_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class ScriptedRunner:
    """Runs whatever callable the task's title names (executor tests)."""

    name = "scripted"

    def __init__(self, scripts):
        self.scripts = scripts

    def run(self, task, ctx):
        return self.scripts[task.title](ctx)


def ended_task(executor, task_id):
    """The task once it has ended (waited for)."""
    from .processes import wait_until

    return wait_until(lambda: (t := executor.store.get_task(task_id)).status.is_terminal and t)
