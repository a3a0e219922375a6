"""``flask --app wsgi ops ...`` against a live server, and the commands that need none."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests
from click.testing import CliRunner

from app.cli import cli
from tests.support.api import ADMIN
from tests.support.live import GunicornServer
from tests.support.nginx import NginxServer
from tests.support.processes import ROOT, free_port
from tests.support.sse import DEV_KINDS, events

SERVER_ENV = {"SETTINGS_ADMIN_TOKEN": ADMIN, "DEV_LOCAL_LLM": "1",
              "OPS_DEV_TICK_SECONDS": "0.2", "OPS_WORKERS": "1"}
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if not k.startswith(("OPS_", "SUPABASE_", "SETTINGS_", "DEV_LOCAL", "WEB_",
                                  "FORWARDED_"))}


@pytest.fixture(scope="module")
def server():
    with GunicornServer(SERVER_ENV) as server:
        yield server


def run(*args: str, url: str | None = None, **env: str):
    """Invoke the ``ops`` group in-process with a clean environment plus ``env``."""
    environ = {name: None for name in os.environ if name not in CLEAN_ENV}
    environ.update(env)
    url_args = ["--url", url] if url else []
    return CliRunner().invoke(cli, [*url_args, *args], env=environ, catch_exceptions=False)


def flask(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    """The real command line, as an operator types it."""
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "ops", *args],
                          cwd=ROOT, env={**CLEAN_ENV, **env}, capture_output=True, text=True,
                          timeout=timeout)


# -- task commands against a live server ----------------------------------------------------

@pytest.mark.live
def test_create_list_show_and_follow(server):
    created = run("create", "Deploy api", "--body", "v2", url=server.url,
                  SETTINGS_ADMIN_TOKEN=ADMIN)
    assert created.exit_code == 0, created.output
    task_id, status, runner = created.output.split()
    assert (status, runner) == ("queued", "dev")

    listed = run("list", url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert any(line.split()[0] == task_id and line.endswith("Deploy api")
               for line in listed.output.splitlines())
    shown = run("show", task_id, url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert '"body": "v2"' in shown.output

    followed = run("follow", task_id, url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert followed.exit_code == 0
    assert [line.split()[2] for line in followed.output.splitlines()] == DEV_KINDS

    # Resuming after the third event prints only what came after it.
    resumed = run("follow", task_id, "--last-event-id", "3", "--json", url=server.url,
                  SETTINGS_ADMIN_TOKEN=ADMIN)
    assert [line.split('"kind": "')[1].split('"')[0]
            for line in resumed.output.splitlines()] == DEV_KINDS[3:]


@pytest.mark.live
def test_cancel_a_queued_and_a_running_task(server):
    first = run("create", "busy", url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN).output.split()[0]
    second = run("create", "waits", url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN).output.split()[0]
    # One executor worker: the second waits behind the first.
    assert run("cancel", second, url=server.url,
               SETTINGS_ADMIN_TOKEN=ADMIN).output.strip() == f"{second} canceled"
    answer = run("cancel", first, url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN).output.strip()
    assert answer in (f"{first} running (cancel requested)", f"{first} canceled")
    followed = run("follow", first, url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert followed.exit_code == 1  # not done
    assert followed.output.splitlines()[-1].split()[2] == "canceled"


@pytest.mark.live
def test_token_opens_the_stream(server):
    task_id = run("create", "t", url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN).output.split()[0]
    minted = run("token", task_id, url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    token = minted.stdout.strip()
    assert token.startswith(f"v1.{task_id}.") and "expires at" in minted.stderr
    stream = requests.get(f"{server.url}/ops/tasks/{task_id}/stream", params={"token": token},
                          timeout=20)
    assert [e["kind"] for e in events(stream.text)] == DEV_KINDS


@pytest.mark.live
def test_errors_say_what_is_wrong(server):
    wrong = run("list", url=server.url, SETTINGS_ADMIN_TOKEN="wrong")
    assert wrong.exit_code == 1 and "401 invalid admin token" in wrong.output
    missing = run("show", "999999", url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert missing.exit_code == 1 and "404" in missing.output
    no_token = run("list", url=server.url)
    assert no_token.exit_code == 2 and "SETTINGS_ADMIN_TOKEN is not set" in no_token.output
    nobody = run("list", url=f"http://127.0.0.1:{free_port()}", SETTINGS_ADMIN_TOKEN=ADMIN)
    assert nobody.exit_code == 1 and "cannot reach" in nobody.output


@pytest.mark.live
@pytest.mark.slow
def test_follow_resumes_when_the_proxy_cuts_the_stream():
    # Heartbeats slower than nginx's read timeout: nginx cuts the stream while the task
    # waits between ticks, and the command reconnects with Last-Event-ID.
    env = {**SERVER_ENV, "OPS_DEV_TICK_SECONDS": "1.3", "OPS_HEARTBEAT_SECONDS": "30",
           "OPS_SSE_RETRY_MS": "100", "OPS_GRACEFUL_TIMEOUT": "2"}
    with GunicornServer(env) as gunicorn, NginxServer(gunicorn.port, "1s") as nginx:
        task_id = run("create", "t", url=nginx.url, SETTINGS_ADMIN_TOKEN=ADMIN).output.split()[0]
        followed = flask("--url", nginx.url, "follow", task_id, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert followed.returncode == 0, followed.stderr
    assert [line.split()[2] for line in followed.stdout.splitlines()] == DEV_KINDS  # no repeats
    assert "stream interrupted" in followed.stderr and "resuming after event" in followed.stderr


# -- commands that need no server ------------------------------------------------------------

def test_migrations_prints_every_file_in_name_order(tmp_path):
    (tmp_path / "0002_events.sql").write_text("create table b ();\n")
    (tmp_path / "0001_tasks.sql").write_text("create table a ();\n")
    (tmp_path / "README.md").write_text("not sql")
    result = run("migrations", "--dir", str(tmp_path))
    assert result.exit_code == 0
    assert result.output == ("-- 0001_tasks.sql\ncreate table a ();\n\n"
                             "-- 0002_events.sql\ncreate table b ();\n\n")


def test_migrations_says_when_there_are_none(tmp_path):
    result = run("migrations", "--dir", str(tmp_path / "nowhere"))
    assert result.exit_code == 1 and "no migration files (*.sql) in" in result.output


def test_check_reports_store_runners_and_what_is_missing():
    ok = run("check", SETTINGS_ADMIN_TOKEN=ADMIN, DEV_LOCAL_LLM="1")
    assert ok.exit_code == 0, ok.output
    assert "in-process" in ok.output and "runners:        dev" in ok.output
    assert "OPS_STREAM_SECRET" in ok.output and ok.output.endswith("ok\n")
    assert ADMIN not in ok.output

    no_runner = run("check", SETTINGS_ADMIN_TOKEN=ADMIN)
    assert no_runner.exit_code == 1
    assert "missing: no runner is configured" in no_runner.output

    two_workers = run("check", SETTINGS_ADMIN_TOKEN=ADMIN, DEV_LOCAL_LLM="1", WEB_CONCURRENCY="2")
    assert two_workers.exit_code == 1 and "WEB_CONCURRENCY=2 needs the Supabase" in \
        two_workers.output


def test_check_runs_even_when_the_app_cannot_load():
    """``flask --app wsgi ops check`` works without the settings the app needs to start."""
    broken = flask("check")
    assert broken.returncode == 1
    assert "SETTINGS_ADMIN_TOKEN is not set" in broken.stdout
    assert "Traceback" not in broken.stderr
