"""``GET /ops/tasks/{id}/log``: the output as text, its filters, markers and gate; and how
``flask ops follow`` prints output lines."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from app.cli.output import EventPrinter
from app.store import TaskStatus


def log(stream: str, first_line: int, *lines: str) -> tuple[str, dict]:
    return ("log", {"stream": stream, "first_line": first_line, "lines": list(lines)})


CUT = ("log_cut", {"after_line": 3, "lines_left_out": 1000, "bytes_left_out": 12345,
                   "message": "..."})


@pytest.fixture
def store(app):
    return app.extensions["services"].store


@pytest.fixture
def task_id(store):
    """A finished task whose output passed the cap: 3 lines, 1000 left out, then 3 more."""
    task = store.create_task("build", None, "recipe")
    store.mark_running(task.id)
    store.append_events(task.id, [log("stdout", 1, "one", "two"), log("stderr", 3, "three")])
    store.append_event(task.id, "log_held", {"after_line": 3, "tail_bytes": 99, "message": ""})
    store.append_events(task.id, [CUT, log("stdout", 1004, "1004"),
                                  log("stderr", 1005, "error: 1005", "1006")])
    store.finish(task.id, TaskStatus.FAILED, {"reason": "exit code 1"})
    return task.id


MARKER = "[… 1,000 lines (12,345 bytes) left out: lines 4 to 1,003 …]"


def test_the_whole_output_with_the_marker_where_the_cap_cut(admin, task_id):
    answer = admin.get(f"/ops/tasks/{task_id}/log")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert answer.headers["X-Task-Status"] == "failed"
    assert answer.get_data(as_text=True).splitlines() == [
        "one", "two", "three", MARKER, "1004", "error: 1005", "1006"]


@pytest.mark.parametrize("query, lines", [
    ("stream=stderr", ["three", MARKER, "error: 1005", "1006"]),
    ("stream=stdout", ["one", "two", MARKER, "1004"]),
    ("since_line=2", ["two", "three", MARKER, "1004", "error: 1005", "1006"]),
    ("since_line=500", [MARKER, "1004", "error: 1005", "1006"]),
    ("since_line=1005", ["error: 1005", "1006"]),
    ("since_line=1005&stream=stdout", []),
    ("since_line=2000", []),
])
def test_one_stream_and_the_rest_from_a_line(admin, task_id, query, lines):
    answer = admin.get(f"/ops/tasks/{task_id}/log?{query}")
    assert answer.status_code == 200
    assert answer.get_data(as_text=True).splitlines() == lines


def test_a_running_task_answers_what_is_there_and_says_what_is_held(admin, store):
    task = store.create_task("build", None, "recipe")
    assert admin.get(f"/ops/tasks/{task.id}/log").get_data() == b""
    store.mark_running(task.id)
    store.append_events(task.id, [log("stdout", 1, "héllo \ufffd")])
    answer = admin.get(f"/ops/tasks/{task.id}/log")
    assert answer.headers["X-Task-Status"] == "running"
    assert answer.get_data(as_text=True) == "héllo \ufffd\n"
    store.append_event(task.id, "log_held", {"after_line": 1, "tail_bytes": 16384,
                                             "message": ""})
    assert admin.get(f"/ops/tasks/{task.id}/log").get_data(as_text=True).splitlines()[-1] == (
        "[… output past this point is held; its last 16,384 bytes are written when the "
        "command ends …]")


def test_many_pages_of_events_come_whole(admin, store):
    task = store.create_task("build", None, "recipe")
    store.mark_running(task.id)
    store.append_events(task.id, [log("stdout", n, str(n)) for n in range(1, 451)])
    text = admin.get(f"/ops/tasks/{task.id}/log").get_data(as_text=True)
    assert text.splitlines() == [str(n) for n in range(1, 451)]


def test_a_stream_token_for_the_task_opens_it(client, admin, app, task_id):
    tokens = app.extensions["services"].tokens
    token, _ = tokens.mint(task_id)
    assert client.get(f"/ops/tasks/{task_id}/log?token={token}").status_code == 200
    other, _ = tokens.mint(task_id + 1)
    assert client.get(f"/ops/tasks/{task_id}/log?token={other}").status_code == 403
    assert client.get(f"/ops/tasks/{task_id}/log").status_code == 401
    assert admin.get("/ops/tasks/999999/log").status_code == 404


@pytest.mark.parametrize("query", ["stream=both", "since_line=0", "since_line=x"])
def test_wrong_parameters_are_refused(admin, task_id, query):
    answer = admin.get(f"/ops/tasks/{task_id}/log?{query}")
    assert answer.status_code == 422 and "error" in answer.get_json()


def test_follow_prints_output_lines_as_lines_stderr_to_stderr():
    @click.command()
    def show():
        echo_event = EventPrinter()
        echo_event({"id": 5, "kind": "log", "created_at": "2026-12-01T00:00:00.000000Z",
                    "data": {"stream": "stdout", "first_line": 1, "lines": ["a", "b"]}})
        echo_event({"id": 6, "kind": "log", "created_at": "2026-12-01T00:00:00.000000Z",
                    "data": {"stream": "stderr", "first_line": 3, "lines": ["oops"]}})
        echo_event({"id": 7, "kind": "done", "created_at": "2026-12-01T00:00:01.000000Z",
                    "data": {}})

    result = CliRunner().invoke(show)
    lines = result.stdout.splitlines()
    assert lines[:2] == ["a", "b"] and len(lines) == 3 and "done" in lines[2].split()
    assert result.stderr == "oops\n"
