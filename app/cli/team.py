"""``flask ops``: who is who — named credentials (``token new``), stream tokens (``token ID``),
``whoami`` and the audit trail (``audit``). Registered on the group of :mod:`.commands`."""

from __future__ import annotations

import json
import os

import click

from ..credential_file import (
    ADMIN_NAME,
    NAME,
    CredentialFileError,
    load_credentials,
    new_token,
    stanza,
)
from ..roles import ROLE_NAMES, Role
from .client import Api
from .commands import cli, pass_api
from .output import audit_table, echo


class TokenCommands(click.Group):
    """``token ID`` is short for ``token stream ID``: any first argument that names no
    subcommand goes to ``stream``, as ``ops token ID`` did before ``token new`` existed."""

    default = "stream"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [self.default, *args]
        return super().parse_args(ctx, args)


@cli.group(cls=TokenCommands, subcommand_metavar="ID | new NAME [--role ROLE]")
def token() -> None:
    """Mint a stream token for a task (`token ID`), or make a named credential (`token new
    NAME --role ROLE`)."""


@token.command("stream")
@click.argument("task_id", type=click.IntRange(min=1))
@pass_api
def stream_token(api: Api, task_id: int) -> None:
    """Mint a stream token for a task: the token on stdout, its expiry on stderr (`token ID`
    is the same)."""
    answer = api.call("POST", "/ops/stream_tokens", json={"task_id": task_id})
    click.echo(answer["token"])
    click.echo(f"expires at {answer['expires_at']}; stream with "
               f"{api.url}/ops/tasks/{task_id}/stream?token=<token>", err=True)


def _credential_name(ctx, param, name: str) -> str:
    if not NAME.fullmatch(name):
        raise click.BadParameter("a name is 1-64 letters, digits or ._@+- starting with a "
                                 "letter or digit", ctx, param)
    if name == ADMIN_NAME:
        raise click.BadParameter(f"{ADMIN_NAME!r} is the admin token's name", ctx, param)
    return name


@token.command("new")
@click.argument("name", callback=_credential_name)
@click.option("--role", type=click.Choice(ROLE_NAMES), default=Role.VIEWER.label,
              show_default=True, help="What the token may do.")
def new_credential(name: str, role: str) -> None:
    """Make a named token: print it once, then the entry that grants it, for the credentials
    file (OPS_TOKENS_FILE). Needs no server.

    stdout: the token on the first line, then the [[token]] entry (which holds only the
    token's SHA-256); what to do with them goes to stderr."""
    secret = new_token()
    click.echo(secret)
    click.echo(f"The line above is the token of {name} ({role}), shown only this once: give "
               f"it to {name}, who sends it as X-Admin-Token (or exports it as OPS_TOKEN for "
               "`flask ops`). Add this entry to the credentials file (OPS_TOKENS_FILE); the "
               "server reads the file again when it changes:", err=True)
    click.echo(stanza(name, Role.parse(role), secret), nl=False)
    path = _file_naming(name)
    if path:
        click.echo(f"{path} already has a token named {name}: replace its entry with this "
                   "one (its old token then stops working)", err=True)


def _file_naming(name: str) -> str | None:
    """OPS_TOKENS_FILE, when it is set, reads well and has a token named ``name``."""
    path = os.environ.get("OPS_TOKENS_FILE", "").strip()
    if not path:
        return None
    try:
        known = load_credentials(path)
    except CredentialFileError:
        return None
    return path if any(c.name == name for c in known.tokens.values()) else None


@cli.command()
@click.option("--actor", metavar="NAME", help="Only what this credential or user did.")
@click.option("--action", metavar="ACTION", help="Only this action: task.create, "
              "task.relaunch, task.cancel, stream_token.mint, auth.refused, "
              "credentials.reload.")
@click.option("--task", "task_id", type=click.IntRange(min=1), help="Only about this task.")
@click.option("--since", metavar="TIME", help="From this ISO 8601 time (2026-12-01T09:00:00Z).")
@click.option("--until", metavar="TIME", help="Before this ISO 8601 time.")
@click.option("--limit", type=click.IntRange(1, 200), default=50, show_default=True,
              help="Records per page.")
@click.option("--all", "every_page", is_flag=True, help="Every page, not just the newest one.")
@click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")
@pass_api
def audit(api: Api, actor: str | None, action: str | None, task_id: int | None,
          since: str | None, until: str | None, limit: int, every_page: bool,
          as_json: bool) -> None:
    """Print the audit trail, newest first: time, actor, action, task, outcome, client and
    the details. Needs the admin role."""
    filters = {"actor": actor, "action": action, "task_id": task_id, "since": since,
               "until": until}
    params = {"limit": limit, **{k: v for k, v in filters.items() if v is not None}}
    answer = api.call("GET", "/ops/audit", params=params)
    records = answer["records"]
    while every_page and answer["next_cursor"] is not None:
        answer = api.call("GET", "/ops/audit", params={**params, "cursor": answer["next_cursor"]})
        records.extend(answer["records"])
    if as_json:
        click.echo(json.dumps({"records": records, "next_cursor": answer["next_cursor"]},
                              indent=2))
        return
    if not records:
        click.echo("no audit records" + (" match" if len(params) > 1 else ""), err=True)
        return
    for line in audit_table(records):
        echo(line)
    if answer["next_cursor"] is not None:
        click.echo("older records left out: --all prints them too", err=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")
@pass_api
def whoami(api: Api, as_json: bool) -> None:
    """Who the token acts as: its name, role and how it was recognised."""
    answer = api.call("GET", "/ops/whoami")
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    may = answer.get("may") or {}
    click.echo(f"name: {answer['name']}\nrole: {answer['role']}\nvia:  {answer['via']}")
    click.echo("may:  " + ", ".join(["read", *(k for k, v in may.items() if v)]))
