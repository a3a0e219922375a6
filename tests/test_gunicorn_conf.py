"""gunicorn.conf.py's settings and hooks, loaded as gunicorn loads them."""

from __future__ import annotations

import os
import runpy
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest

from app import group_records
from app.executor.runners.process import group_alive
from app.group_records import GroupRecords
from app.store import TaskStatus
from tests.support.api import Admin, make_settings
from tests.support.processes import ROOT, wait_until

METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def load(monkeypatch, **env) -> dict:
    """The config's namespace, read with ``env``; the hooks' changes to it are undone after."""
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("OPS_", "WEB_", "FORWARDED_", "PROMETHEUS_"))}
    monkeypatch.setattr(os, "environ", {**environ, **env})
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def fake_server(workers: int):
    return types.SimpleNamespace(cfg=types.SimpleNamespace(workers=workers))


def test_settings_come_from_the_environment(monkeypatch):
    conf = load(monkeypatch, WEB_CONCURRENCY="3", OPS_BIND="0.0.0.0:9000",
                FORWARDED_ALLOW_IPS="10.0.0.2")
    assert (conf["workers"], conf["bind"], conf["worker_class"]) == (3, "0.0.0.0:9000", "gevent")
    assert conf["forwarded_allow_ips"] == "10.0.0.2"
    assert conf["accesslog"] is None  # the app logs each request itself
    assert conf["logger_class"] == "app.logs.GunicornLogger"
    assert "max_requests" not in conf and "preload_app" not in conf


def test_defaults(monkeypatch):
    conf = load(monkeypatch)
    assert ((conf["bind"], conf["workers"], conf["worker_connections"], conf["timeout"],
             conf["graceful_timeout"], conf["keepalive"], conf["forwarded_allow_ips"],
             conf["loglevel"], conf["accesslog"])
            == ("127.0.0.1:8080", 1, 1000, 30, 20, 5, "127.0.0.1,::1", "info", None))


@pytest.mark.parametrize("env, message", [
    ({"OPS_WORKER_CONNECTIONS": "many"},
     "error: OPS_WORKER_CONNECTIONS must be an integer, got 'many'"),
    ({"OPS_KEEPALIVE": "-1"}, "error: OPS_KEEPALIVE must be between 0 and 3600, got -1"),
    ({"FORWARDED_ALLOW_IPS": "nginx"}, "error: FORWARDED_ALLOW_IPS must list"),
])
def test_a_wrong_value_stops_gunicorn_in_one_line(monkeypatch, env, message):
    with pytest.raises(SystemExit) as stop:
        load(monkeypatch, **env)
    assert str(stop.value.code).startswith(message)


def test_the_master_reads_its_settings_without_flask_or_ssl():
    """Workers monkey-patch after the fork: the master must not have imported what they patch."""
    code = ("import runpy, sys; runpy.run_path('gunicorn.conf.py'); "
            "print(sorted({'flask', 'gevent', 'requests', 'ssl'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_metrics_directory_is_made_for_several_workers_and_removed(monkeypatch):
    conf = load(monkeypatch)
    server = fake_server(workers=2)
    conf["_prepare_metrics_dir"](server)
    directory = Path(os.environ[METRICS_DIR])
    assert directory.is_dir()
    conf["on_exit"](server)
    assert not directory.exists()


def test_one_worker_needs_no_metrics_directory(monkeypatch):
    conf = load(monkeypatch)
    conf["_prepare_metrics_dir"](fake_server(workers=1))
    assert METRICS_DIR not in os.environ


@pytest.mark.parametrize("workers", [1, 2])
def test_a_given_metrics_directory_is_kept_and_emptied(monkeypatch, tmp_path, workers):
    (tmp_path / "gauge_livesum_1.db").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("not ours")
    conf = load(monkeypatch, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    server = fake_server(workers)
    conf["_prepare_metrics_dir"](server)
    conf["on_exit"](server)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_child_exit_kills_the_recipe_groups_of_the_dead_worker(monkeypatch, tmp_path):
    """The worker recorded a group (test_recipe_containment.py) and died with it running."""
    records = GroupRecords(str(tmp_path))
    sleeper = subprocess.Popen(["sleep", "600"], start_new_session=True)
    group = sleeper.pid
    conf = load(monkeypatch)
    monkeypatch.setattr(group_records, "_installed", records)
    records.add(group)
    warnings = []
    server = types.SimpleNamespace(log=types.SimpleNamespace(
        warning=lambda *args: warnings.append(args[0] % args[1:])))
    conf["child_exit"](server, types.SimpleNamespace(pid=os.getpid()))
    wait_until(lambda: not group_alive(group), timeout=10, message=f"group {group} to end")
    sleeper.wait()
    assert warnings == [f"worker {os.getpid()} died with recipes running: killed process "
                        f"group(s) {group}"]


def test_a_stopping_worker_waits_for_its_tasks_to_end(monkeypatch, make_app):
    """worker_int (INT, QUIT) starts the shutdown; worker_exit, as the process exits, waits
    for it; neither minds a worker stopped while it boots, before its app exists."""
    conf = load(monkeypatch)
    ignored = []  # what worker_exit ignores afterwards (in this process too, unless faked)
    monkeypatch.setattr(signal, "signal", lambda sig, handler: ignored.append((sig, handler)))
    cfg = types.SimpleNamespace(graceful_timeout=4)
    server = types.SimpleNamespace(cfg=cfg)
    booting = types.SimpleNamespace(cfg=cfg)
    conf["worker_int"](booting)
    conf["worker_exit"](server, booting)
    app = make_app(make_settings(dev_tick_seconds=60))
    task_id = Admin(app.test_client()).create("long")["id"]
    store = app.extensions["services"].store
    wait_until(lambda: store.get_task(task_id).status == TaskStatus.RUNNING)
    worker = types.SimpleNamespace(cfg=cfg, wsgi=app)
    conf["worker_int"](worker)
    conf["worker_exit"](server, worker)
    task = store.get_task(task_id)
    assert (task.status, task.error) == (TaskStatus.FAILED, "shutdown")
    # Once done, a stop signal the master repeats cannot kill it as the interpreter exits.
    stops = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT}
    assert set(ignored) == {(sig, signal.SIG_IGN) for sig in stops}
