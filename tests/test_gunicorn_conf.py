"""gunicorn.conf.py's settings and hooks, loaded as gunicorn loads them."""

from __future__ import annotations

import os
import runpy
import types
from pathlib import Path

import pytest

from tests.support.processes import ROOT

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
