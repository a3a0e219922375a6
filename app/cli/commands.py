"""``flask --app wsgi ops ...``: what an operator does at a terminal.

The task commands (create, relaunch, list, show, follow, cancel, notifications, token,
recipes, audit, whoami) call the HTTP API of a running server: ``--url`` (or ``OPS_URL``; default
``http://127.0.0.1:8080``) with the token from ``OPS_TOKEN`` (a named token of the credentials
file), else the admin token from ``SETTINGS_ADMIN_TOKEN``. That is the only way that works with
the in-process store (its tasks live inside the server) and the way to reach a server on
another host; ``follow`` resumes with ``Last-Event-ID`` when the connection drops, as a browser
would. ``migrations``, ``check`` and ``token new`` read local files and the environment and
need no server. The commands about who is who (``token``, ``whoami``, ``audit``) are in
:mod:`.team`. What they print for a person is :mod:`.output`; :mod:`.client` calls the
server and words its failures.

The group is also a ``flask.commands`` entry point (setup.cfg), so ``ops check`` still runs
when the configuration is too broken for the app to load.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click
import requests

from ..config import CliSettings, declarations
from ..store.base import TERMINAL_KINDS
from ..stream.reader import read_messages
from .client import AnswerError, Api, Unreachable, why
from .output import EventPrinter, delivery_table, echo, recipe_lines, task_table, worker_table

DEFAULT_URL = declarations(CliSettings)["url"].default
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "supabase" / "migrations"
STREAM_READ_TIMEOUT = 75.0  # several heartbeats (15 s by default) must fit in it


pass_api = click.make_pass_decorator(Api)


@click.group(name="ops")
@click.option("--url", envvar="OPS_URL", default=DEFAULT_URL, show_default=True,
              help="The server to call (env OPS_URL).")
@click.pass_context
def cli(ctx: click.Context, url: str) -> None:
    """Operate the Ops Orchestrator. Task commands call the server at --url with the token
    from OPS_TOKEN, else the admin token from SETTINGS_ADMIN_TOKEN."""
    source = "OPS_TOKEN" if os.environ.get("OPS_TOKEN", "").strip() else "SETTINGS_ADMIN_TOKEN"
    ctx.obj = Api(url, os.environ.get(source, "").strip() or None, source=source)


def _params(ctx, option, values: tuple[str, ...]) -> dict[str, str]:
    """``--param key=value`` options as a dict; each key once."""
    params: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", ctx, option)
        if key in params:
            raise click.BadParameter(f"{key} is given twice", ctx, option)
        params[key] = text
    return params


@cli.command()
@click.argument("title")
@click.option("--body", help="Notes for the task.")
@click.option("--recipe", metavar="NAME", help="Run this command recipe (see `ops recipes`).")
@click.option("--param", "params", metavar="KEY=VALUE", multiple=True, callback=_params,
              help="A parameter of the recipe; repeat for each.")
@click.option("--follow", "then_follow", is_flag=True, help="Then follow its events.")
@pass_api
@click.pass_context
def create(ctx: click.Context, api: Api, title: str, body: str | None, recipe: str | None,
           params: dict[str, str], then_follow: bool) -> None:
    """Create a task; print its id, status and runner."""
    if params and recipe is None:
        raise click.UsageError("--param needs --recipe NAME (`ops recipes` lists them)")
    payload = {"title": title, **({"body": body} if body is not None else {}),
               **({"recipe": recipe, "params": params} if recipe is not None else {})}
    try:
        task = api.call("POST", "/ops/tasks", json=payload)
    except AnswerError as error:
        if recipe is None and "recipes only" in error.message:
            error.message = ("this server runs recipes only: name one with --recipe NAME "
                             "(`ops recipes` lists them)")
        raise
    click.echo(f"{task['id']} {task['status']} {task.get('runner') or '-'}")
    if then_follow:
        ctx.exit(_exit_code(follow_events(api, task["id"], 0, retries=10, on_event=EventPrinter())))


@cli.command("list")
@click.option("--status", help="Only tasks with this status.")
@click.option("--created-by", metavar="NAME", help="Only tasks this credential or user created.")
@click.option("--limit", type=click.IntRange(1, 200), default=20, show_default=True)
@pass_api
def list_tasks(api: Api, status: str | None, created_by: str | None, limit: int) -> None:
    """List the newest tasks: id, status, runner, age, who created it, duration, title."""
    params = {"limit": limit, **({"status": status} if status else {}),
              **({"created_by": created_by} if created_by else {})}
    tasks = api.call("GET", "/ops/tasks", params=params)["tasks"]
    if not tasks:
        click.echo("no tasks" + (f" with status {status}" if status else "")
                   + (f" created by {created_by}" if created_by else ""), err=True)
        return
    for line in task_table(tasks):
        echo(line)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")
@pass_api
def recipes(api: Api, as_json: bool) -> None:
    """List the command recipes the server runs, with their parameters."""
    answer = api.call("GET", "/ops/recipes")
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    if not answer["recipes"]:
        click.echo("the server has no recipes" + ("" if answer.get("configured") else
                   " (OPS_RECIPES is not set there)"), err=True)
        return
    for line in recipe_lines(answer["recipes"]):
        echo(line)
    first = answer["recipes"][-1]
    example = " ".join(f"--param {p['name']}=..." for p in first.get("params") or [])
    click.echo(f"\nrun one: flask --app wsgi ops create TITLE --recipe {first['name']} "
               f"{example}".rstrip(), err=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")
@pass_api
def workers(api: Api, as_json: bool) -> None:
    """List the server processes that share the task queue: host, pools, load, last seen."""
    answer = api.call("GET", "/ops/workers")
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    for line in worker_table(answer["workers"]):
        echo(line)


@cli.command()
@click.argument("task_id", type=click.IntRange(min=1))
@pass_api
def show(api: Api, task_id: int) -> None:
    """Print one task as JSON (created_by and canceled_by say who did); on stderr, how many
    notifications it has, if any."""
    click.echo(json.dumps(api.call("GET", f"/ops/tasks/{task_id}"), indent=2))
    try:
        count = len(api.call("GET", f"/ops/tasks/{task_id}/notifications")["notifications"])
    except (click.ClickException, requests.RequestException, ValueError, KeyError):
        return  # an older server without the list: the task is what was asked for
    if count:
        click.echo(f"{count} notification deliver{'y' if count == 1 else 'ies'}: "
                   f"`ops notifications {task_id}` lists them", err=True)


@cli.command()
@click.argument("task_id", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")
@pass_api
def notifications(api: Api, task_id: int, as_json: bool) -> None:
    """Where the task's notifications went: event, status, attempts, when delivered (or the
    next attempt, while pending), URL, and the last HTTP status or error."""
    answer = api.call("GET", f"/ops/tasks/{task_id}/notifications")
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    if not answer["notifications"]:
        click.echo(f"no notifications for task {task_id}", err=True)
        return
    for line in delivery_table(answer["notifications"]):
        echo(line)


@cli.command()
@click.argument("task_id", type=click.IntRange(min=1))
@click.option("--last-event-id", type=click.IntRange(min=0), default=0,
              help="Start after this event id (resume).")
@click.option("--retries", type=click.IntRange(min=0), default=10, show_default=True,
              help="Reconnections in a row without an event before giving up.")
@click.option("--json", "as_json", is_flag=True, help="Print each event as one JSON line.")
@pass_api
@click.pass_context
def follow(ctx, api: Api, task_id: int, last_event_id: int, retries: int, as_json: bool) -> None:
    """Print a task's events as they happen, until it ends.

    The task's output comes as its command wrote it (stderr's lines on stderr); the rest as
    one short line each. Exits 0 when the task is done, 1 when it failed or was canceled."""
    printer = (lambda event: click.echo(json.dumps(event))) if as_json else EventPrinter()
    ctx.exit(_exit_code(follow_events(api, task_id, last_event_id, retries, printer)))


@cli.command()
@click.argument("task_id", type=click.IntRange(min=1))
@pass_api
def cancel(api: Api, task_id: int) -> None:
    """Cancel a task (a running one stops at its next checkpoint)."""
    task = api.call("POST", f"/ops/tasks/{task_id}/cancel")
    stopping = task.get("cancel_requested") and task["status"] == "running"
    state = task["status"] + (" (cancel requested)" if stopping else "")
    click.echo(f"{task['id']} {state}")


@cli.command()
@click.argument("task_id", type=click.IntRange(min=1))
@click.option("--title", help="A new title (default: the task's).")
@click.option("--param", "params", metavar="KEY=VALUE", multiple=True, callback=_params,
              help="Change a parameter of the task's recipe; repeat for each. The others "
                   "stay as they were.")
@click.option("--follow", "then_follow", is_flag=True, help="Then follow the new task's events.")
@pass_api
@click.pass_context
def relaunch(ctx: click.Context, api: Api, task_id: int, title: str | None,
             params: dict[str, str], then_follow: bool) -> None:
    """Run a finished task again: a new task with its title, notes, recipe and parameters
    (and who asked is you); print the new task's id, status and runner."""
    payload = {**({"title": title} if title is not None else {}),
               **({"params": params} if params else {})}
    task = api.call("POST", f"/ops/tasks/{task_id}/relaunch", json=payload)
    click.echo(f"{task['id']} {task['status']} {task.get('runner') or '-'}")
    if then_follow:
        ctx.exit(_exit_code(follow_events(api, task["id"], 0, retries=10, on_event=EventPrinter())))


@cli.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=MIGRATIONS_DIR, show_default=True, help="Where the *.sql files are.")
def migrations(directory: Path) -> None:
    """Print the Supabase migration SQL (every *.sql file, in name order)."""
    files = sorted(directory.glob("*.sql")) if directory.is_dir() else []
    if not files:
        raise click.ClickException(f"no migration files (*.sql) in {directory}")
    for path in files:
        click.echo(f"-- {path.name}")
        click.echo(path.read_text().rstrip() + "\n")


@cli.command()
@click.option("--connect/--no-connect", default=True, show_default=True,
              help="Also check that the Supabase store answers.")
def check(connect: bool) -> None:
    """Check the configuration: which store, which runners, what is missing."""
    from .check import report

    problems = report(os.environ, connect, click.echo)
    if problems:
        raise click.ClickException(f"{problems} problem(s): the service cannot run like this")
    click.echo("ok")


# -- following a stream -----------------------------------------------------------------------

def follow_events(api: Api, task_id: int, last_id: int, retries: int, on_event) -> str:
    """Pass each event to ``on_event`` until the terminal one, whose kind is returned.

    A server that cannot be reached at all is an error at once; a stream that breaks once
    open is resumed."""
    failures, delay, connected = 0, 3.0, False
    while True:
        headers = {"Accept": "text/event-stream"}
        if last_id:
            headers["Last-Event-ID"] = str(last_id)
        reason = "the stream ended before the task did"
        try:
            with api.send("GET", f"/ops/tasks/{task_id}/stream", headers=headers, stream=True,
                          timeout=(api.timeout, STREAM_READ_TIMEOUT)) as response:
                connected = True
                for message in read_messages(response.iter_lines()):
                    if message.retry is not None:
                        delay = message.retry / 1000
                    if message.data is None:
                        continue
                    event = json.loads(message.data)
                    last_id, failures = event["id"], 0
                    on_event(event)
                    if event["kind"] in TERMINAL_KINDS:
                        return event["kind"]
        except AnswerError as error:
            if error.status < 500:
                raise  # no such task, bad token: trying again will not help
            reason = error.message
        except Unreachable as error:
            if not connected:
                raise
            reason = error.message
        except requests.RequestException as error:
            reason = why(error)
        failures += 1
        if failures > retries:
            raise click.ClickException(f"gave up after {retries} reconnection(s): {reason}")
        click.echo(f"stream interrupted ({reason}); resuming after event {last_id}", err=True)
        time.sleep(delay)


def _exit_code(kind: str) -> int:
    return 0 if kind == "done" else 1

