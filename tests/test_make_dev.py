"""What ``make dev`` installs and hands to gunicorn, and what gunicorn says as it starts.

The Makefile runs with a stand-in for gunicorn that prints its environment, so that what a
user set (or emptied) is seen as the server would see it, in a second."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import types

import pytest
import setuptools

from app.config import Settings
from app.executor import build_runners
from tests.support.api import ADMIN
from tests.support.processes import ROOT, free_port

SHOWN = ("SETTINGS_ADMIN_TOKEN", "DEV_LOCAL_LLM", "OPS_RECIPES", "OPS_BIND", "SUPABASE_URL",
         "SUPABASE_SERVICE_ROLE_KEY", "WEB_CONCURRENCY")
CLEAN = {k: v for k, v in os.environ.items()
         if not k.startswith(("OPS_", "SUPABASE_", "SETTINGS_", "DEV_LOCAL", "WEB_", "PORT",
                              "MAKE"))}


@pytest.fixture
def make_dev(tmp_path):
    """``make dev`` with ``env``; its banner and the environment gunicorn got."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    fake = tmp_path / "gunicorn"
    fake.write_text("#!/bin/sh\n" + "".join(f'echo "{name}=${{{name}-<unset>}}"\n'
                                          for name in SHOWN))
    fake.chmod(0o755)

    def run(*args: str, **env: str) -> tuple[str, dict[str, str]]:
        done = subprocess.run(["make", "-s", "dev", "STAMP=", f"BIN={tmp_path}", *args],
                              cwd=ROOT, env={**CLEAN, **env}, capture_output=True, text=True,
                              timeout=30, check=True)
        banner, *lines = done.stdout.splitlines()
        return banner, dict(line.split("=", 1) for line in lines)
    return run


def test_make_dev_serves_the_quick_start_as_written(make_dev):
    banner, env = make_dev()
    assert banner.startswith("admin token: adm ")
    assert (env["SETTINGS_ADMIN_TOKEN"], env["DEV_LOCAL_LLM"], env["OPS_BIND"]) == (
        "adm", "1", "127.0.0.1:8080")
    assert env["OPS_RECIPES"] == "docs/examples/recipes.toml"
    assert env["SUPABASE_URL"] == "<unset>" and env["WEB_CONCURRENCY"] == "1"


def test_make_dev_keeps_what_the_user_set(make_dev):
    _, env = make_dev(SUPABASE_URL="https://p.supabase.co", SUPABASE_SERVICE_ROLE_KEY="k" * 20,
                      OPS_RECIPES="", SETTINGS_ADMIN_TOKEN=ADMIN)
    assert env["SUPABASE_URL"] == "https://p.supabase.co"
    assert env["SUPABASE_SERVICE_ROLE_KEY"] == "k" * 20
    assert env["OPS_RECIPES"] == ""  # set and empty: no recipes
    assert env["SETTINGS_ADMIN_TOKEN"] == ADMIN
    assert make_dev("PORT=9000")[1]["OPS_BIND"] == "127.0.0.1:9000"
    assert make_dev(PORT="9001")[1]["OPS_BIND"] == "127.0.0.1:9001"


def test_without_dev_mode_the_token_is_random_and_nothing_says_dev(make_dev):
    banner, env = make_dev(DEV_LOCAL_LLM="0")
    assert env["DEV_LOCAL_LLM"] == "0" and len(env["SETTINGS_ADMIN_TOKEN"]) >= 40
    assert "dev" not in banner.replace("export", "")


def test_make_dev_installs_what_serving_needs_and_make_test_the_rest():
    def commands(target: str) -> str:
        return subprocess.run(["make", "-n", "-B", target], cwd=ROOT, env=CLEAN,
                              capture_output=True, text=True, check=True).stdout

    serving = commands(".venv/.installed")
    assert "pip install -q -e .\n" in serving and "[dev]" not in serving
    assert "pip install -q -e '.[dev]'" in commands(".venv/.installed-test")
    test_target = subprocess.run(["make", "-n", "-p"], cwd=ROOT, env=CLEAN, capture_output=True,
                                 text=True).stdout
    assert re.search(r"^test: \S*\.installed-test", test_target, re.M)


def test_every_folder_of_the_package_is_declared_so_setuptools_has_no_warning():
    """A folder of data that is not declared (the dashboard's app/ui) made pip print a
    60-line warning on every install."""
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    find = config["options.packages.find"]
    assert config["options"]["packages"].strip() == "find_namespace:"
    found = set(setuptools.find_namespace_packages(
        str(ROOT), include=find["include"].split(", "), exclude=find["exclude"].split(", ")))
    folders = {str(path.relative_to(ROOT)).replace(os.sep, ".")
               for path in (ROOT / "app").rglob("*")
               if path.is_dir() and path.name != "__pycache__" and any(path.iterdir())}
    assert folders | {"app"} == found
    data = config["options.package_data"]
    assert data["app.ui"].strip() == "*.html" and data["app.ui.static"].strip() == "*"


# -- gunicorn's start ------------------------------------------------------------------------

def load_conf(monkeypatch, **env) -> dict:
    import runpy

    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("OPS_", "WEB_", "SUPABASE_", "SETTINGS_", "DEV_LOCAL"))}
    monkeypatch.setattr(os, "environ", {**environ, **env})
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


@pytest.mark.parametrize("env, runners", [
    ({"DEV_LOCAL_LLM": "1"}, "dev, for every task (DEV_LOCAL_LLM=1)"),
    ({"OPS_RECIPES": "docs/examples/recipes.toml", "OPS_LLM_BASE_URL": "http://127.0.0.1:1/v1",
      "OPS_LLM_MODEL": "m"}, "recipe (2 from docs/examples/recipes.toml), llm"),
    ({}, "none"),
])
def test_the_start_says_where_and_with_what_it_serves(monkeypatch, env, runners):
    env = {"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_RECIPE_USER": "nobody" if os.geteuid() == 0
           else "", **env}
    conf = load_conf(monkeypatch, **env)
    said = []
    server = types.SimpleNamespace(LISTENERS=["http://127.0.0.1:9000"],
                                   log=types.SimpleNamespace(info=lambda m, *a: said.append(m % a)))
    conf["when_ready"](server)
    assert said == ["serving http://127.0.0.1:9000 (dashboard at /ops/ui) · store: in-process · "
                    f"runners: {runners}"]
    built = set(build_runners(Settings.from_env()))
    assert built == {name for name in ("dev", "recipe", "llm") if name in runners}


def test_the_start_names_the_supabase_host(monkeypatch):
    conf = load_conf(monkeypatch, SETTINGS_ADMIN_TOKEN=ADMIN, DEV_LOCAL_LLM="1",
                     SUPABASE_URL="https://abc.supabase.co", SUPABASE_SERVICE_ROLE_KEY="k" * 20)
    said = []
    conf["when_ready"](types.SimpleNamespace(
        LISTENERS=["http://127.0.0.1:8080"],
        log=types.SimpleNamespace(info=lambda m, *a: said.append(m % a))))
    assert "· store: Supabase at abc.supabase.co ·" in said[0]


@pytest.mark.live
def test_a_busy_port_is_one_line_at_once():
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT,
            env={**CLEAN, "SETTINGS_ADMIN_TOKEN": ADMIN, "DEV_LOCAL_LLM": "1",
                 "OPS_BIND": f"127.0.0.1:{port}"}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and time.monotonic() - started < 4  # gunicorn retries for 5 s
    errors = [line for line in done.stderr.splitlines() if "Starting gunicorn" not in line]
    assert errors == [f"error: port {port} of 127.0.0.1 is in use by another program: stop it, "
                      f"or listen on another port (OPS_BIND=127.0.0.1:9000; with make dev: "
                      f"PORT=9000 make dev)"]
