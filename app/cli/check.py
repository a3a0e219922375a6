"""``flask ops check``: what the environment configures, and what it lacks to run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from ..config import ConfigError, ServerSettings, Settings
from ..executor import NoRunner, TaskRejected, build_runners, choose_runner


def report(environ: Mapping[str, str], connect: bool, echo: Callable[[str], None]) -> int:
    """Describe the configuration through ``echo``; return how many problems stop it running.

    Secrets are never shown, only whether they are set."""
    try:
        settings = Settings.from_env(environ)
        server = ServerSettings.from_env(environ)
    except ConfigError as error:
        echo(f"configuration: {error}")
        return 1
    problems: list[str] = []
    notes: list[str] = []

    if settings.uses_supabase:
        host = urlsplit(settings.supabase_url).netloc or settings.supabase_url
        echo(f"store:          Supabase at {host} (service role key set)")
        if connect:
            problem = _store_problem(settings)
            echo(f"                {'reachable' if problem is None else 'NOT reachable'}")
            if problem:
                problems.append(problem)
    else:
        echo("store:          in-process (tasks are lost on restart; one gunicorn worker)")
        if server.workers != 1:
            problems.append(f"WEB_CONCURRENCY={server.workers} needs the Supabase store: set "
                            "SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY, or WEB_CONCURRENCY=1")

    runners = build_runners(settings)
    echo(f"runners:        {', '.join(sorted(runners)) or 'none'}")
    if settings.recipes is not None:
        names = ", ".join(recipe.name for recipe in settings.recipes.recipes) or "none"
        echo(f"recipes:        {names} (from {settings.recipes.path})")
    try:
        choose_runner(settings, runners, {})
    except NoRunner as error:
        problems.append(str(error))
    except TaskRejected:
        # Recipes and no model server: a working set-up, where every task names a recipe.
        notes.append("every task must name a recipe (`ops create TITLE --recipe NAME`); set "
                     "OPS_LLM_BASE_URL and OPS_LLM_MODEL to also run tasks without one")

    if settings.stream_secret_is_fallback:
        echo("stream tokens:  signed with the admin token")
        notes.append("set OPS_STREAM_SECRET so that stream tokens do not depend on the "
                     "admin token")
    else:
        echo(f"stream tokens:  signed with OPS_STREAM_SECRET ({len(settings.stream_secrets)} "
             f"secret(s)), valid {settings.stream_token_ttl:g}s")
    if settings.dev_mode:
        notes.append("DEV_LOCAL_LLM=1: dev mode accepts ?admin_token= on streams; not for "
                     "production")
    echo("metrics:        GET /metrics with X-Admin-Token"
         + (" or Authorization: Bearer $OPS_METRICS_TOKEN" if settings.metrics_token else ""))
    echo(f"trusted proxy:  {', '.join(settings.trusted_proxies)} (FORWARDED_ALLOW_IPS)")
    echo(f"logs:           {'JSON lines' if server.log_json else 'text'}")

    for note in notes:
        echo(f"note: {note}")
    for problem in problems:
        echo(f"missing: {problem}")
    return len(problems)


def _store_problem(settings: Settings) -> str | None:
    """None when the configured store answers, else what went wrong."""
    from ..store import make_store

    store = None
    try:
        store = make_store(settings)
        store.check()
    except Exception as error:  # any failure here is the answer, not a crash
        return f"the store does not answer: {type(error).__name__}: {error}"
    finally:
        if store is not None:
            store.close()
    return None
