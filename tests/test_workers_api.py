"""Pools and the processes that serve them, through the API: ``OPS_POOLS``, a recipe's
``pool``, ``GET /ops/workers`` (the in-process store: this process alone). The shared queue
across processes is tests/test_shared_queue.py."""

from __future__ import annotations

import dataclasses
import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest

from app.config import Settings
from app.environment import ConfigError
from app.recipes import parse_recipes
from tests.support.api import HEADERS, make_settings
from tests.support.credentials import headers_of, write_credentials
from tests.support.processes import wait_until

BOOK = parse_recipes({"recipes": {"deploy": {"argv": ["true"], "pool": "deploy"},
                                  "build": {"argv": ["true"]}}}, base=Path("."))


def test_a_recipe_whose_pool_no_process_serves_is_refused_and_creates_nothing(make_app):
    app = make_app(make_settings(recipes=BOOK, pools=("default",)))
    client = app.test_client()
    refused = client.post("/ops/tasks", json={"title": "d", "recipe": "deploy"},
                          headers=HEADERS)
    assert refused.status_code == 503
    assert refused.get_json() == {"error": "no server process serves the pool deploy: start "
                                           "one that does (docs/supabase.md)"}
    assert client.get("/ops/tasks", headers=HEADERS).get_json()["tasks"] == []
    built = client.post("/ops/tasks", json={"title": "b", "recipe": "build"}, headers=HEADERS)
    assert built.status_code == 201 and "pool" not in built.get_json()


def test_a_served_pool_runs_and_the_task_names_it_and_its_worker(make_app):
    app = make_app(make_settings(recipes=BOOK, pools=("deploy", "default")))
    client = app.test_client()
    created = client.post("/ops/tasks", json={"title": "d", "recipe": "deploy"},
                          headers=HEADERS).get_json()
    assert created["pool"] == "deploy"
    recipes = client.get("/ops/recipes", headers=HEADERS).get_json()["recipes"]
    assert {r["name"]: r["pool"] for r in recipes} == {"deploy": "deploy", "build": "default"}
    done = wait_until(lambda: (t := client.get(f"/ops/tasks/{created['id']}",
                                               headers=HEADERS).get_json())["status"] == "done"
                      and t, timeout=10)
    assert done["worker"].split(":")[:2] == [socket.gethostname(), str(os.getpid())]


def test_workers_lists_this_process_for_every_role(make_app, tmp_path):
    tokens = write_credentials(tmp_path / "tokens.toml")
    app = make_app(make_settings(recipes=BOOK, pools=("deploy",), tokens_file=str(tokens),
                                 workers=3))
    client = app.test_client()
    answer = client.get("/ops/workers", headers=headers_of("vera"))
    assert answer.status_code == 200
    [row] = answer.get_json()["workers"]
    assert (row["host"], row["pid"], row["pools"], row["workers"], row["running"]) == (
        socket.gethostname(), os.getpid(), ["deploy"], 3, 0)
    assert row["recipes"] == ["deploy", "build"] and row["runners"] == ["dev", "recipe"]
    assert row["live"] and row["this"] and row["stopped_at"] is None
    # Long after its row was written, the answering process is still seen now.
    registry = app.extensions["services"].store.worker_registry()
    [stored] = registry.workers()
    registry.advertise(dataclasses.replace(stored, workers=3))
    with registry._lock:  # as if its row had last been renewed a day ago
        registry._rows[stored.id] = dataclasses.replace(
            stored, last_seen=stored.last_seen - timedelta(days=1))
    [row] = client.get("/ops/workers", headers=headers_of("vera")).get_json()["workers"]
    assert row["live"] and row["last_seen"] > stored.last_seen.isoformat()
    assert client.get("/ops/workers").status_code == 401


@pytest.mark.parametrize("raw, pools", [(None, None), ("*", None), (" deploy, default ,deploy",
                                                                  ("deploy", "default"))])
def test_ops_pools_reads_names(raw, pools):
    env = {"SETTINGS_ADMIN_TOKEN": "x" * 32}
    if raw is not None:
        env["OPS_POOLS"] = raw
    assert Settings.from_env(env).pools == pools


def test_ops_pools_refuses_a_bad_name():
    with pytest.raises(ConfigError, match="OPS_POOLS must list pool names"):
        Settings.from_env({"SETTINGS_ADMIN_TOKEN": "x" * 32, "OPS_POOLS": "Deploy Hosts"})
