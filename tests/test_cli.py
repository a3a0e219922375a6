"""``flask --app wsgi ops ...`` against a live server, and the commands that need none."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import click
import pytest
import requests
from click.testing import CliRunner

from app.cli import cli
from app.cli.output import EventPrinter, audit_table, delivery_table, task_table
from app.credential_file import Credential, parse_credentials, token_hash
from app.roles import Role
from tests.support.api import ADMIN
from tests.support.live import GunicornServer
from tests.support.nginx import NginxServer
from tests.support.processes import ROOT, free_port, wait_until
from tests.support.receiver import Receiver
from tests.support.runners import recipe_user_env
from tests.support.sse import DEV_KINDS, events

RECIPES = str(ROOT / "tests" / "support" / "recipes.toml")
SERVER_ENV = {"SETTINGS_ADMIN_TOKEN": ADMIN, "DEV_LOCAL_LLM": "1",
              "OPS_DEV_TICK_SECONDS": "0.2", "OPS_WORKERS": "1", "OPS_RECIPES": RECIPES}
# What `ops follow` prints for a dev task, one line each: the status event says "running".
FOLLOWED = ["created", "running", "tick", "tick", "tick", "tick", "done"]
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
    header, *rows = listed.output.splitlines()
    assert header.split() == ["ID", "STATUS", "RUNNER", "CREATED", "BY", "DURATION", "TITLE"]
    assert any(line.split()[0] == task_id and line.endswith("Deploy api") for line in rows)
    assert all(re.search(r"  (\d+[smhd] ago) +admin  ", line) for line in rows), rows
    shown = run("show", task_id, url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert '"body": "v2"' in shown.output and '"created_by": "admin"' in shown.output

    followed = run("follow", task_id, url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert followed.exit_code == 0
    lines = followed.output.splitlines()
    assert [line.split()[1] for line in lines] == FOLLOWED
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d", line.split()[0]) for line in lines)
    assert lines[0].endswith("created  runner dev") and lines[2].endswith("tick     n=1")
    assert re.search(r"done     ticks=4 · after \d+\.\ds$", lines[-1])
    assert "\x1b[" not in followed.output  # no colour outside a terminal

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
    assert followed.output.splitlines()[-1].split()[1:3] == ["canceled", "canceled"]
    shown = run("show", first, url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN).output
    assert '"cancel_requested": true' in shown  # and stays so once canceled


@pytest.mark.live
def test_relaunch_runs_a_finished_task_again(server):
    created = run("create", "Tag release", "--body", "notes", "--recipe", "argv",
                  "--param", "ref=main", "--param", "other=abc", url=server.url,
                  SETTINGS_ADMIN_TOKEN=ADMIN)
    assert created.exit_code == 0, created.output
    source = created.output.split()[0]
    assert run("follow", source, url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN).exit_code == 0

    again = run("relaunch", source, "--title", "Tag release again", "--param", "other=xyz",
                "--follow", url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert again.exit_code == 0, again.output  # followed to "done"
    first, *followed = again.output.splitlines()
    new_id, status, runner = first.split()
    assert (status, runner) == ("queued", "dev") and new_id != source
    assert [line.split()[1] for line in followed] == FOLLOWED
    shown = json.loads(run("show", new_id, url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN).output)
    assert (shown["title"], shown["body"], shown["recipe"]) == (
        "Tag release again", "notes", "argv")
    assert shown["params"] == {"ref": "main", "other": "xyz"}
    assert shown["relaunched_from"] == int(source) and shown["created_by"] == "admin"

    plain = run("relaunch", new_id, url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert plain.exit_code == 0 and plain.output.split()[1:] == ["queued", "dev"]
    wrong = run("relaunch", new_id, "--param", "other=NOT", url=server.url,
                SETTINGS_ADMIN_TOKEN=ADMIN)
    assert wrong.exit_code == 1 and "422 parameter other does not match" in wrong.output
    missing = run("relaunch", "999999", url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert missing.output == "Error: task 999999 not found\n"
    bad = run("relaunch", source, "--param", "other", url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert bad.exit_code == 2 and "'other' is not KEY=VALUE" in bad.output


@pytest.mark.live
def test_notifications_lists_where_a_tasks_notifications_went(server):
    with Receiver(answers=[500]) as receiver, GunicornServer({
            **SERVER_ENV, "OPS_NOTIFY_URLS": receiver.url + "/hook",
            "OPS_NOTIFY_SECRET": "notify-secret-0123456789abcdef"}) as notifying:
        task_id = run("create", "Deploy api", url=notifying.url,
                      SETTINGS_ADMIN_TOKEN=ADMIN).output.split()[0]
        assert run("follow", task_id, url=notifying.url, SETTINGS_ADMIN_TOKEN=ADMIN).exit_code == 0

        def delivered():
            answer = run("notifications", task_id, "--json", url=notifying.url,
                         SETTINGS_ADMIN_TOKEN=ADMIN)
            assert answer.exit_code == 0, answer.output
            found = json.loads(answer.stdout)["notifications"]
            return found and found[0]["status"] == "delivered" and found

        [delivery] = wait_until(delivered, interval=0.2,
                                message="the notification to be delivered")
        assert (delivery["event"], delivery["attempts"]) == ("task.ended", 2)
        listed = run("notifications", task_id, url=notifying.url, SETTINGS_ADMIN_TOKEN=ADMIN)
        assert listed.exit_code == 0, listed.output
        header, row = listed.stdout.splitlines()
        assert header.split() == ["EVENT", "STATUS", "ATTEMPTS", "DELIVERED/NEXT", "URL", "LAST"]
        assert re.fullmatch(rf"task\.ended +delivered +2 +\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d +"
                            rf"{re.escape(receiver.url)}/hook +200", row), row
        assert "\x1b[" not in listed.output

        shown = run("show", task_id, url=notifying.url, SETTINGS_ADMIN_TOKEN=ADMIN)
        assert json.loads(shown.stdout)["id"] == int(task_id)
        assert shown.stderr == (f"1 notification delivery: `ops notifications {task_id}` "
                                "lists them\n")

    # A server without notification URLs: none, said on stderr; an unknown task is an error.
    quiet = run("create", "t", url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN).output.split()[0]
    none = run("notifications", quiet, url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert none.exit_code == 0 and none.stdout == ""
    assert none.stderr == f"no notifications for task {quiet}\n"
    assert run("show", quiet, url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN).stderr == ""
    missing = run("notifications", "999999", url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert missing.exit_code == 1 and missing.output == "Error: task 999999 not found\n"


@pytest.mark.live
def test_token_opens_the_stream(server):
    task_id = run("create", "t", url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN).output.split()[0]
    minted = run("token", task_id, url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    token = minted.stdout.strip()
    assert token.startswith(f"v1.{task_id}.") and "expires at" in minted.stderr
    spelled_out = run("token", "stream", task_id, url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert spelled_out.stdout.startswith(f"v1.{task_id}.") and spelled_out.stdout != token
    not_an_id = run("token", "abc", url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert not_an_id.exit_code == 2 and "'abc' is not a valid integer" in not_an_id.output
    stream = requests.get(f"{server.url}/ops/tasks/{task_id}/stream", params={"token": token},
                          timeout=20)
    assert [e["kind"] for e in events(stream.text)] == DEV_KINDS


@pytest.mark.live
def test_errors_say_what_is_wrong(server):
    wrong = run("list", url=server.url, SETTINGS_ADMIN_TOKEN="wrong")
    assert wrong.exit_code == 1 and "401 invalid X-Admin-Token" in wrong.output
    missing = run("show", "999999", url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert missing.exit_code == 1 and missing.output == "Error: task 999999 not found\n"
    unknown = run("follow", "999999", url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert unknown.exit_code == 1 and unknown.output == "Error: task 999999 not found\n"
    no_token = run("list", url=server.url)
    assert no_token.exit_code == 2
    assert "no token: export yours as OPS_TOKEN, or the server's admin token as " \
        "SETTINGS_ADMIN_TOKEN" in no_token.output


def test_an_unreachable_server_is_one_line_at_once():
    url = f"http://127.0.0.1:{free_port()}"
    for command in (["list"], ["follow", "1"]):
        started = time.monotonic()
        nobody = run(*command, url=url, SETTINGS_ADMIN_TOKEN=ADMIN)
        assert nobody.exit_code == 1
        assert nobody.output.startswith(f"Error: cannot reach {url}: connection refused")
        assert len(nobody.output.splitlines()) == 1 and "Max retries" not in nobody.output
        assert time.monotonic() - started < 5  # follow does not retry a server never reached


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
    assert [line.split()[1] for line in followed.stdout.splitlines()] == FOLLOWED  # no repeats
    assert "stream interrupted" in followed.stderr and "resuming after event" in followed.stderr


@pytest.mark.live
def test_recipes_and_creating_a_recipe_task(server):
    listed = run("recipes", url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert listed.exit_code == 0, listed.output
    assert re.search(r"^lines +COUNT lines on stdout and on stderr", listed.stdout, re.M)
    assert re.search(r"^ +count +\(matches \[0-9\]\{1,5\}\)$", listed.stdout, re.M)
    assert "--recipe" in listed.stderr  # how to run one

    created = run("create", "Print", "--recipe", "lines", "--param", "count=2",
                  "--param", "code=0", url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert created.exit_code == 0, created.output
    task_id = created.output.split()[0]
    shown = run("show", task_id, url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN).output
    assert '"recipe": "lines"' in shown and '"count": "2"' in shown
    followed = run("follow", task_id, url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert "created  runner dev · recipe lines count=2 code=0" in followed.output

    workers = run("workers", url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert workers.exit_code == 0, workers.output
    header, row = workers.output.splitlines()
    assert header.split() == ["HOST", "PID", "POOLS", "RUNNING", "STATE", "LAST", "SEEN"]
    marked, host, pid, pools, load, state = row.split()[:6]
    assert (marked, pools, state) == ("*", "*", "live"), row
    assert load.split("/")[0] in ("0", "1") and int(pid) > 0 and host, row

    wrong = run("create", "x", "--recipe", "lines", "--param", "count=many", "--param",
                "code=0", url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
    assert wrong.exit_code == 1 and "422 parameter count does not match" in wrong.output
    for bad, says in ((["--param", "count"], "'count' is not KEY=VALUE"),
                      (["--param", "a=1", "--param", "a=2"], "a is given twice"),
                      (["--param", "a=1"], "--param needs --recipe NAME")):
        refused = run("create", "x", *(["--recipe", "lines"] if "needs" not in says else []),
                      *bad, url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
        assert refused.exit_code == 2 and says in refused.output, refused.output


@pytest.mark.live
def test_follow_prints_a_recipes_output_as_lines_stderr_to_stderr():
    env = {"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_RECIPES": RECIPES, **recipe_user_env()}
    with GunicornServer(env) as gunicorn:
        bare = run("create", "no recipe", url=gunicorn.url, SETTINGS_ADMIN_TOKEN=ADMIN)
        assert bare.exit_code == 1
        assert bare.output == ("Error: this server runs recipes only: name one with --recipe "
                               "NAME (`ops recipes` lists them)\n")
        followed = flask("--url", gunicorn.url, "create", "Print", "--recipe", "lines",
                         "--param", "count=3", "--param", "code=2", "--follow",
                         SETTINGS_ADMIN_TOKEN=ADMIN)
    assert followed.returncode == 1  # the task failed
    assert followed.stderr == "err 0\nerr 1\nerr 2\n"
    out = followed.stdout.splitlines()
    assert out[0].split()[1:] == ["queued", "recipe"]
    assert [line.split()[1] for line in out[1:3]] == ["created", "running"]
    assert out[3:6] == ["out 0", "out 1", "out 2"]
    assert re.search(r" failed   exit code 2 · 6 output lines · after \d+\.\ds$", out[-1])


# -- named credentials: tokens `ops token new` made, their roles, the audit trail ------------

def new_credential(name: str, *role: str, **env: str) -> tuple[str, str]:
    """``ops token new``: the token (stdout's first line) and the entry printed after it."""
    made = run("token", "new", name, *role, **env)
    assert made.exit_code == 0, made.output
    token, *entry = made.stdout.splitlines()
    return token, "\n".join(entry) + "\n"


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    """A server whose credentials file holds what ``ops token new`` printed: vera, a viewer,
    and otto, an operator. ``named.as_(name)`` runs a command with that name's token."""
    tokens, entries = {}, []
    for name, role in (("vera", "viewer"), ("otto", "operator")):
        tokens[name], entry = new_credential(name, "--role", role)
        entries.append(entry)
    path = tmp_path_factory.mktemp("credentials") / "tokens.toml"
    path.write_text("\n".join(entries))
    with GunicornServer({**SERVER_ENV, "OPS_TOKENS_FILE": str(path)}) as server:
        def as_(name: str, *args: str):
            if name == "admin":
                return run(*args, url=server.url, SETTINGS_ADMIN_TOKEN=ADMIN)
            # OPS_TOKEN goes before the admin token
            return run(*args, url=server.url, OPS_TOKEN=tokens[name], SETTINGS_ADMIN_TOKEN=ADMIN)
        server.as_ = as_
        yield server


@pytest.mark.live
def test_a_viewer_token_reads_but_creates_nothing(named):
    me = named.as_("vera", "whoami")
    assert me.exit_code == 0, me.output
    assert me.output == "name: vera\nrole: viewer\nvia:  token\nmay:  read\n"
    assert named.as_("otto", "whoami").output.splitlines()[-1] == "may:  read, create, cancel"
    assert '"audit": true' in named.as_("admin", "whoami", "--json").output

    assert named.as_("vera", "list").exit_code == 0
    refused = named.as_("vera", "create", "not mine to make")
    assert refused.exit_code == 1
    assert refused.output == "Error: 403 this needs the operator role; vera is viewer\n"
    no_audit = named.as_("vera", "audit")
    assert no_audit.exit_code == 1 and "403 this needs the admin role" in no_audit.output

    wrong = run("whoami", url=named.url, OPS_TOKEN="ops_not-a-token")
    assert wrong.exit_code == 1
    assert wrong.output == ("Error: 401 invalid X-Admin-Token (is OPS_TOKEN a token of this "
                            "server?)\n")


@pytest.mark.live
def test_tasks_say_who_created_and_canceled_them(named):
    mine = named.as_("otto", "create", "otto's").output.split()[0]
    theirs = named.as_("admin", "create", "admin's").output.split()[0]
    assert named.as_("otto", "cancel", mine).exit_code == 0
    assert named.as_("vera", "follow", mine).exit_code == 1  # it ends canceled

    header, *rows = named.as_("vera", "list", "--created-by", "otto").output.splitlines()
    assert header.split()[4] == "BY"
    assert mine in [row.split()[0] for row in rows]
    assert theirs not in [row.split()[0] for row in rows]
    assert all(row.split()[5] == "otto" for row in rows), rows  # "3s ago" is two words
    nobody = named.as_("vera", "list", "--created-by", "nobody")
    assert nobody.exit_code == 0 and nobody.stderr == "no tasks created by nobody\n"

    shown = named.as_("vera", "show", mine).output
    assert '"created_by": "otto"' in shown and '"canceled_by": "otto"' in shown
    assert '"canceled_by": null' in named.as_("vera", "show", theirs).output


@pytest.mark.live
def test_audit_lists_who_did_what(named):
    task_id = named.as_("otto", "create", "audited").output.split()[0]
    named.as_("vera", "create", "refused")

    about = named.as_("admin", "audit", "--task", task_id)
    assert about.exit_code == 0, about.output
    header, *rows = about.output.splitlines()
    assert header.split() == ["TIME", "ACTOR", "ACTION", "TASK", "OUTCOME", "CLIENT", "DETAIL"]
    assert [row.split()[2:7] for row in rows] == [
        ["otto", "task.create", task_id, "ok", "127.0.0.1"]]
    denied = named.as_("admin", "audit", "--actor", "vera", "--action", "task.create").output
    assert re.search(r" vera +task\.create +- +denied +127\.0\.0\.1 +403 this needs the "
                     r"operator role", denied), denied

    # --all follows next_cursor: pages of one record add up to the same records
    one_page = named.as_("admin", "audit", "--json", "--limit", "200").output
    paged = named.as_("admin", "audit", "--json", "--limit", "1", "--all").output
    assert json.loads(paged)["records"] == json.loads(one_page)["records"]
    assert len(json.loads(paged)["records"]) > 2
    first = named.as_("admin", "audit", "--limit", "1")
    assert len(first.stdout.splitlines()) == 2 and "--all" in first.stderr

    late = named.as_("admin", "audit", "--since", "2999-01-01T00:00:00Z")
    assert late.exit_code == 0 and late.stderr == "no audit records match\n"
    bad = named.as_("admin", "audit", "--since", "yesterday")
    assert bad.exit_code == 1
    assert bad.output.startswith("Error: 422 since must be an ISO 8601 time"), bad.output


# -- commands that need no server ------------------------------------------------------------

def test_token_new_prints_a_token_once_and_the_entry_that_grants_it(tmp_path):
    token, entry = new_credential("alice")
    assert token.startswith("ops_") and token not in entry
    assert f'sha256 = "{token_hash(token)}"' in entry
    assert parse_credentials(entry).by_token(token) == Credential("alice", Role.VIEWER)
    assert new_credential("alice")[0] != token  # fresh each time

    made = run("token", "new", "ci.bot", "--role", "admin")
    assert "shown only this once" in made.stderr and "OPS_TOKENS_FILE" in made.stderr
    ci_token, *ci_entry = made.stdout.splitlines()
    assert parse_credentials("\n".join(ci_entry)).by_token(ci_token).role is Role.ADMIN

    path = tmp_path / "tokens.toml"
    path.write_text(entry)
    again = run("token", "new", "alice", OPS_TOKENS_FILE=str(path))
    assert f"{path} already has a token named alice" in again.stderr

    for name, says in (("admin", "'admin' is the admin token's name"),
                       (".x", "a name is 1-64 letters"), ("a b", "a name is 1-64 letters"),
                       ("a" * 65, "a name is 1-64 letters")):
        refused = run("token", "new", name)
        assert refused.exit_code == 2 and says in refused.output, refused.output
    assert "'boss' is not one of" in run("token", "new", "bob", "--role", "boss").output

    # The real command line, with no server and no settings at all
    real = flask("token", "new", "ci", "--role", "operator")
    assert real.returncode == 0, real.stderr
    token, *lines = real.stdout.splitlines()
    assert parse_credentials("\n".join(lines)).by_token(token) == Credential("ci", Role.OPERATOR)


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


def test_check_on_a_recipes_only_configuration():
    """No model server and no dev mode: every task names a recipe, which is no problem."""
    checked = run("check", SETTINGS_ADMIN_TOKEN=ADMIN, OPS_RECIPES=RECIPES, **recipe_user_env())
    assert checked.exit_code == 0, checked.output
    assert "runners:        recipe\n" in checked.output
    assert re.search(r"^recipes: +lines, gate, .* \(from .*recipes\.toml\)$", checked.output,
                     re.M)
    assert "every task must name a recipe" in checked.output and checked.output.endswith("ok\n")
    real = flask("check", SETTINGS_ADMIN_TOKEN=ADMIN, OPS_RECIPES=RECIPES, **recipe_user_env())
    assert real.returncode == 0 and "Traceback" not in real.stderr, real.stderr


# -- what follow and list print ----------------------------------------------------------------

def event(kind: str, data: dict, second: int = 0) -> dict:
    return {"id": 1, "task_id": 7, "kind": kind, "data": data,
            "created_at": f"2026-11-28T00:40:{second:02d}.000000Z"}


def printed(events: list[dict], color: bool = False, **env: str):
    @click.command()
    def show():
        printer = EventPrinter()
        for e in events:
            printer(e)
    return CliRunner().invoke(show, color=color, env={"NO_COLOR": None, **env})


def test_follow_prints_batched_output_as_lines_and_each_event_as_a_short_line():
    result = printed([
        event("created", {"body": None, "runner": "recipe", "recipe": "deploy",
                          "params": {"ref": "v1"}}),
        event("status", {"status": "running"}, 1),
        event("log", {"stream": "stdout", "first_line": 1, "lines": ["a", "b"]}, 1),
        event("log", {"stream": "stderr", "first_line": 3, "lines": ["oops"]}, 2),
        event("log", {"stream": "stdout", "line": "one at a time"}, 2),
        event("log_cut", {"after_line": 801, "lines_left_out": 1234,
                          "bytes_left_out": 74040}, 3),
        event("log", {"stream": "stdout", "first_line": 2036, "lines": ["tail"]}, 3),
        event("failed", {"reason": "exit code 1", "exit_code": 1, "log": {"lines": 1240}}, 5),
    ])
    assert result.stderr == "oops\n"
    lines = result.stdout.splitlines()
    assert [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in lines] == [
        "created  runner recipe · recipe deploy ref=v1", "running", "a", "b", "one at a time",
        "log_cut  [… 1,234 lines (74,040 bytes) left out: lines 802 to 2,035 …]", "tail",
        "failed   exit code 1 · 1,240 output lines · after 4.0s"]
    assert "\x1b[" not in result.output


def test_a_models_text_comes_as_written_and_ends_its_line():
    result = printed([event("text", {"text": "Hello, "}), event("text", {"text": "world"}),
                      event("done", {"text": "Hello, world", "chars": 12, "model": "m"}, 1)])
    first, last = result.stdout.splitlines()
    assert first == "Hello, world" and last[9:] == "done     chars=12 model=m"


def test_colour_only_for_a_terminal_and_never_with_no_color():
    events = [event("status", {"status": "running"}), event("done", {"ticks": 4}, 1)]
    assert "\x1b[32m" in printed(events, color=True).output  # done in green
    assert "\x1b[" not in printed(events, color=False).output
    assert "\x1b[" not in printed(events, color=True, NO_COLOR="1").output


def test_the_task_table_aligns_columns_and_says_how_long_ago():
    now = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)

    def at(**ago) -> str:
        return (now - timedelta(**ago)).isoformat().replace("+00:00", "Z")

    tasks = [{"id": 12, "status": "running", "runner": "recipe", "created_at": at(seconds=42),
              "started_at": at(seconds=40), "finished_at": None, "title": "Deploy api",
              "cancel_requested": True, "created_by": "alice"},
             {"id": 9, "status": "done", "runner": "dev", "created_at": at(hours=3),
              "started_at": at(hours=3), "finished_at": at(hours=3, seconds=-2),
              "title": "Build", "cancel_requested": False, "created_by": "admin"},
             {"id": 3, "status": "queued", "runner": "llm", "created_at": at(days=2),
              "started_at": None, "finished_at": None, "title": "Ask"}]
    assert [click.unstyle(line) for line in task_table(tasks, now)] == [
        "ID  STATUS               RUNNER  CREATED  BY     DURATION  TITLE",
        "12  running (canceling)  recipe  42s ago  alice  40.0s     Deploy api",
        " 9  done                 dev     3h ago   admin  2.0s      Build",
        " 3  queued               llm     2d ago   -      -         Ask"]


def test_the_audit_table_aligns_columns_and_puts_the_details_last():
    records = [{"id": 3, "at": "2026-12-01T09:00:02.000000Z", "actor": "vera",
                "action": "task.create", "outcome": "denied", "task_id": None,
                "client": "10.0.0.7", "request_id": "r3",
                "detail": {"status": 403, "error": "this needs the operator role"}},
               {"id": 2, "at": "2026-12-01T09:00:01.000000Z", "actor": None,
                "action": "auth.refused", "outcome": "denied", "task_id": None,
                "client": "10.0.0.9", "request_id": None,
                "detail": {"reason": "invalid X-Admin-Token", "status": 401, "count": 3}},
               {"id": 1, "at": "2026-12-01T09:00:00.000000Z", "actor": "otto",
                "action": "task.create", "outcome": "ok", "task_id": 12, "client": "10.0.0.7",
                "request_id": "r1", "detail": {"status": 201}}]
    lines = [re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "TIME", click.unstyle(line))
             for line in audit_table(records)]
    assert lines == [
        "TIME                 ACTOR  ACTION        TASK  OUTCOME  CLIENT    DETAIL",
        "TIME  vera   task.create      -  denied   10.0.0.7  403 this needs the operator role",
        "TIME  -      auth.refused     -  denied   10.0.0.9  401 invalid X-Admin-Token (3 times)",
        "TIME  otto   task.create     12  ok       10.0.0.7  201"]
    assert "\x1b[32m" in audit_table(records)[-1]  # ok in green on a terminal


def test_the_delivery_table_says_when_and_puts_the_last_answer_last():
    deliveries = [
        {"id": 1, "url": "https://hooks.example.com/ops?key=[redacted]", "event": "task.ended",
         "format": "json", "status": "delivered", "attempts": 3, "last_status": 200,
         "last_error": None, "next_attempt_at": None,
         "delivered_at": "2026-12-02T03:00:03.120000Z", "created_at": "2026-12-02T03:00:00Z"},
        {"id": 2, "url": "https://hooks.slack.com/services/[redacted]", "event": "task.ended",
         "format": "slack", "status": "pending", "attempts": 2, "last_status": 500,
         "last_error": "HTTP 500", "next_attempt_at": "2026-12-02T03:00:05.000000Z",
         "delivered_at": None, "created_at": "2026-12-02T03:00:00Z"},
        {"id": 3, "url": "http://10.0.0.9:9/hook", "event": "task.started", "format": "json",
         "status": "failed", "attempts": 12, "last_status": None,
         "last_error": "ConnectError: [Errno 111] Connection refused", "next_attempt_at": None,
         "delivered_at": None, "created_at": "2026-12-02T03:00:00Z"}]
    lines = [re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "TIME", click.unstyle(line))
             for line in delivery_table(deliveries)]
    assert lines == [
        "EVENT         STATUS     ATTEMPTS  DELIVERED/NEXT       URL"
        "                                           LAST",
        "task.ended    delivered         3  TIME  https://hooks.example.com/ops?key=[redacted]  "
        "200",
        "task.ended    pending           2  TIME  https://hooks.slack.com/services/[redacted]   "
        "HTTP 500",
        "task.started  failed           12  -                    http://10.0.0.9:9/hook"
        "                        ConnectError: [Errno 111] Connection refused"]
    assert "\x1b[32m" in delivery_table(deliveries)[1]  # delivered in green on a terminal
