"""Settings read from the environment, checked once at start-up.

Each setting is declared once, as a dataclass field made by :func:`setting`: its variable,
default, bounds and a line of help (how fields are declared and read, and the readers of each
kind of value: :mod:`app.environment`). :func:`read_env` reads the declared fields of a class
from the environment; ``docs/configuration.md`` is the table users read, and a test checks it
against these declarations. Three groups, by who reads them:

- :class:`Settings`: the app (``create_app``), checked again by gunicorn's master at start;
- :class:`ServerSettings`: ``gunicorn.conf.py`` and the log set-up, before any app exists;
- :class:`CliSettings`: the ``flask ops`` client.

The names of the seed's variables (``SETTINGS_ADMIN_TOKEN``, ``DEV_LOCAL_LLM``,
``OPS_STREAM_SECRET``, ``SUPABASE_URL``, ``SUPABASE_SERVICE_ROLE_KEY``) are users' and must
not change; the others carry the ``OPS_`` prefix, or the name gunicorn and Prometheus use.

gunicorn's master imports this module before any worker monkey-patches: it must not import
Flask, requests or ``ssl``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

from . import environment as env
from .environment import MIN_SECRET_LENGTH, ConfigError, declarations, read_env, setting
from .isolation import RecipeUser, running_as_root
from .recipes import NotifyTarget, RecipeBook
from .roles import Role

__all__ = ["CliSettings", "ConfigError", "ServerSettings", "Settings", "declarations",
           "read_env", "setting"]

# Without OPS_STREAM_SECRET the admin token is the HMAC key of stream tokens, which anyone
# holding one can test guesses against offline: it must be too long to guess.
MIN_ADMIN_TOKEN_LENGTH = 24
MAKE_A_TOKEN = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
# Retention when OPS_RETENTION_SECONDS is unset and the store is the in-process one (which
# forgets everything at exit anyway); with Supabase it is off unless set.
IN_PROCESS_RETENTION = 86_400.0


# Variables that are gone, and what replaced them: still set, they stop the start.
REMOVED = {
    "OPS_RECIPE_LOG_LINES_PER_SECOND": "no output line is dropped for its rate any more; "
                                       "unset it (OPS_LOG_MAX_BYTES caps a task's output)",
    "OPS_RECIPE_MAX_LOG_LINES": "a task's output is capped in bytes: unset it and set "
                                "OPS_LOG_MAX_BYTES instead",
}


# -- the app's settings ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Settings:
    """What the app runs with. Built from the environment by :meth:`from_env`, or directly
    (tests) with keyword overrides of the defaults."""

    admin_token: str = setting(
        "SETTINGS_ADMIN_TOKEN", required="export SETTINGS_ADMIN_TOKEN=<a long random string> "
        "(admins send it as the X-Admin-Token header)", help="the admin token (X-Admin-Token)")
    dev_mode: bool = setting("DEV_LOCAL_LLM", False,
                             help="dev runner for every task; streams accept ?admin_token=")
    stream_secrets: tuple[str, ...] = setting(
        "OPS_STREAM_SECRET", (), read=env.secrets, shown="the admin token",
        help="stream token keys, comma-separated: the first signs, all verify")
    # Derived: True when no OPS_STREAM_SECRET was set and the admin token signs.
    stream_secret_is_fallback: bool = False
    supabase_url: str | None = setting("SUPABASE_URL", None, help="the Supabase project's URL")
    supabase_key: str | None = setting("SUPABASE_SERVICE_ROLE_KEY", None,
                                       help="the Supabase service role key")
    workers: int = setting("OPS_WORKERS", 4, low=1, high=256,
                           help="tasks run at once per process")
    queue_size: int = setting("OPS_QUEUE_SIZE", 100, low=0, high=100_000,
                              help="tasks that may wait for a worker (Supabase: in the "
                              "queue all processes share)")
    pools: tuple[str, ...] | None = setting(
        "OPS_POOLS", None, read=env.pools, shown="* (every pool)",
        help="the recipe pools whose tasks this process runs, comma-separated")
    heartbeat_seconds: float = setting("OPS_HEARTBEAT_SECONDS", 15.0, low=0.05, high=3600,
                                       help="stream silence before a ping comment")
    retry_ms: int = setting("OPS_SSE_RETRY_MS", 3000, low=0, high=600_000,
                            help="the retry: a stream starts with")
    stream_token_ttl: float = setting("OPS_STREAM_TOKEN_TTL", 300.0, low=1, high=86_400,
                                      help="lifetime of a stream token")
    dev_tick_seconds: float = setting("OPS_DEV_TICK_SECONDS", 0.5, low=0, high=3600,
                                      help="the dev runner's interval between ticks")
    # Four: the operations notes' count, unless set.
    dev_ticks: int = setting("OPS_DEV_TICKS", 4, low=1, high=1_000_000,
                             help="ticks the dev runner emits before done")
    task_timeout: float = setting("OPS_TASK_TIMEOUT_SECONDS", 3600.0, low=1, high=7 * 86_400,
                                  help="a task running longer fails with reason timeout")
    max_streams: int = setting("OPS_MAX_STREAMS", 900, low=1, high=1_000_000,
                               help="open streams per process")
    max_streams_per_task: int = setting("OPS_MAX_STREAMS_PER_TASK", 100, low=1, high=1_000_000,
                                        help="open streams of one task by stream tokens")
    cors_origins: frozenset[str] = setting("OPS_CORS_ORIGINS", frozenset(), read=env.origins,
                                           help="origins allowed to call the API from a page")
    retention_seconds: float | None = setting(
        "OPS_RETENTION_SECONDS", None, read=env.number, low=0, high=10 * 365 * 86_400,
        shown=f"{IN_PROCESS_RETENTION:g} (in-process store); off (Supabase)",
        help="finished tasks are deleted this long after they ended; 0 turns it off")
    retention_interval: float = setting("OPS_RETENTION_INTERVAL", 60.0, low=0.1, high=86_400,
                                        help="seconds between two retention sweeps")
    memory_max_mb: int = setting("OPS_MEMORY_MAX_MB", 512, low=1, high=1024 * 1024,
                                 help="in-process store: MiB of tasks and events kept "
                                 "before the oldest finished tasks are evicted")
    stream_max_seconds: float = setting("OPS_STREAM_MAX_SECONDS", 3600.0, low=1,
                                        high=7 * 86_400, help="a stream ends after this long")
    stream_send_timeout: float = setting("OPS_STREAM_SEND_TIMEOUT", 30.0, low=0.1, high=3600,
                                         help="a client whose write blocks this long is dropped")
    max_title_length: int = setting("OPS_MAX_TITLE_LENGTH", 200, low=1, high=10_000,
                                    help="longest task title, in characters")
    max_body_length: int = setting("OPS_MAX_BODY_LENGTH", 10_000, low=0, high=1_000_000,
                                   help="longest task body, in characters")
    max_request_bytes: int = setting("OPS_MAX_REQUEST_BYTES", 64 * 1024, low=1024,
                                     high=16 * 1024 * 1024, help="largest request body")
    # Deployment: who may scrape /metrics, and whose X-Forwarded-* headers are believed
    # (gunicorn.conf.py reads the same field for gunicorn's forwarded_allow_ips).
    metrics_token: str | None = setting("OPS_METRICS_TOKEN", None, read=env.secret,
                                        help="bearer token that may read /metrics")
    trusted_proxies: tuple[str, ...] = setting(
        "FORWARDED_ALLOW_IPS", ("127.0.0.1", "::1"), read=env.addresses,
        help="proxies whose X-Forwarded-For/-Proto (and sign-in header) are believed")
    # Who is who (docs/security.md): named tokens and proxy users, and their audit trail.
    tokens_file: str | None = setting("OPS_TOKENS_FILE", None, read=env.credential_file,
                                      help="credentials file (TOML): named tokens, proxy "
                                      "users, their roles; re-read when it changes")
    auth_proxy_header: str | None = setting(
        "OPS_AUTH_PROXY_HEADER", None, read=env.header_name,
        help="header naming the user an authenticating proxy signed in")
    auth_proxy_default_role: Role | None = setting(
        "OPS_AUTH_PROXY_DEFAULT_ROLE", None, read=env.role, shown="none",
        help="role of a proxy user the credentials file does not list")
    audit_max_records: int = setting("OPS_AUDIT_MAX_RECORDS", 100_000, low=100,
                                     high=10_000_000,
                                     help="in-process audit trail: records kept")
    # Runners (docs/runners.md): the recipe file, the recipe runner's limits, the model server.
    recipes: RecipeBook | None = setting("OPS_RECIPES", None, read=env.recipe_file,
                                         help="path of the recipe file (TOML)")
    recipe_user: RecipeUser | None = setting(
        "OPS_RECIPE_USER", None, read=env.user, shown="unset (the service's user)",
        help="the user (name or uid) recipes run as when the service runs as root")
    recipe_kill_grace: float = setting("OPS_RECIPE_KILL_GRACE_SECONDS", 5.0, low=0.1, high=600,
                                       help="seconds between SIGTERM and SIGKILL")
    recipe_max_line_bytes: int = setting("OPS_RECIPE_MAX_LINE_BYTES", 4096, low=80,
                                         high=1024 * 1024, help="longest output line sent whole")
    log_max_bytes: int = setting("OPS_LOG_MAX_BYTES", 64 * 1024 * 1024, low=64 * 1024,
                                 high=64 * 1024**3, shown="67108864 (64 MiB)",
                                 help="output kept per task: the first 75% and the last 25%")
    llm_base_url: str | None = setting("OPS_LLM_BASE_URL", None, read=env.http_url,
                                       help="OpenAI-compatible API base")
    llm_api_key: str | None = setting("OPS_LLM_API_KEY", None, repr=False,
                                      help="bearer key for the model server")
    llm_model: str | None = setting("OPS_LLM_MODEL", None, help="model name sent with requests")
    llm_timeout: float = setting("OPS_LLM_TIMEOUT_SECONDS", 60.0, low=0.1, high=3600,
                                 help="longest wait for the model server's next byte")
    llm_batch_seconds: float = setting("OPS_LLM_BATCH_SECONDS", 1.0, low=0, high=60,
                                       help="a text event goes out at least this often")
    llm_batch_chars: int = setting("OPS_LLM_BATCH_CHARS", 2000, low=1, high=1_000_000,
                                   help="or as soon as this many characters wait")
    # Notifications (docs/notifications.md): where each task's summary is posted, how it is
    # signed, and the dashboard's address its links point to.
    notify_urls: tuple[NotifyTarget, ...] = setting(
        "OPS_NOTIFY_URLS", (), read=env.notify_urls, repr=False,
        help="http(s) URLs, comma-separated, told of every task's end")
    notify_secret: str | None = setting(
        "OPS_NOTIFY_SECRET", None, read=env.secret, repr=False,
        help="HMAC key of X-Ops-Signature-256 (required with any notification URL)")
    notify_on_start: bool = setting("OPS_NOTIFY_ON_START", False,
                                    help="also notify when a task starts")
    public_url: str | None = setting("OPS_PUBLIC_URL", None, read=env.public_url,
                                     help="the service's address for users: links in "
                                     "notifications")
    # Not read from the environment: the first retry's delay, doubled at each (tests shorten it).
    notify_retry_base: float = 1.0
    # The Supabase store (docs/supabase.md).
    supabase_poll_seconds: float = setting("OPS_SUPABASE_POLL_SECONDS", 0.5, low=0.05, high=60,
                                           help="how often streams and cancel flags poll")
    supabase_timeout_seconds: float = setting("OPS_SUPABASE_TIMEOUT_SECONDS", 5.0, low=0.1,
                                              high=120, help="timeout of one request")
    supabase_lease_seconds: float = setting("OPS_SUPABASE_LEASE_SECONDS", 10.0, low=0.1,
                                            high=3600, help="how often leases are renewed")
    supabase_orphan_seconds: float = setting(
        "OPS_SUPABASE_ORPHAN_SECONDS", 60.0, low=0.3, high=86_400,
        help="an unfinished task silent this long is an orphan")
    supabase_outbox_events: int = setting("OPS_SUPABASE_OUTBOX_EVENTS", 10_000, low=1,
                                          high=10_000_000,
                                          help="events kept while Supabase is unreachable")

    @property
    def uses_llm(self) -> bool:
        return bool(self.llm_base_url and self.llm_model)

    @property
    def uses_supabase(self) -> bool:
        return bool(self.supabase_url and self.supabase_key)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *,
                 is_root: Callable[[], bool] = running_as_root) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``), or raise ConfigError.

        ``is_root`` says whether the service runs as root (tests replace it)."""
        env = os.environ if environ is None else environ
        for name, replacement in REMOVED.items():
            if name in env:
                raise ConfigError(f"{name} is no longer read: {replacement}")
        values = read_env(cls, environ)
        # What one variable alone cannot say.
        if len(values["admin_token"]) < MIN_ADMIN_TOKEN_LENGTH and not values["dev_mode"]:
            raise ConfigError(f"SETTINGS_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN_LENGTH} "
                              f"characters long outside dev mode; make one with: {MAKE_A_TOKEN}")
        _check_recipe_user(values, is_root())
        if not values["stream_secrets"]:
            values["stream_secrets"] = (values["admin_token"],)
            values["stream_secret_is_fallback"] = True

        url, key = values["supabase_url"], values["supabase_key"]
        if bool(url) != bool(key):
            missing = "SUPABASE_SERVICE_ROLE_KEY" if url else "SUPABASE_URL"
            raise ConfigError(f"{missing} is not set: the Supabase store needs both "
                              "SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY (or neither)")
        retention = values["retention_seconds"]
        if retention is None and not url:
            retention = IN_PROCESS_RETENTION
        values["retention_seconds"] = retention or None  # 0 turns it off

        lease, orphan = values["supabase_lease_seconds"], values["supabase_orphan_seconds"]
        if orphan < 3 * lease:
            raise ConfigError(f"OPS_SUPABASE_ORPHAN_SECONDS ({orphan:g}) must be at least three "
                              f"times OPS_SUPABASE_LEASE_SECONDS ({lease:g}), or live tasks "
                              f"could be taken for orphans")

        check_notify(values["notify_urls"], values["notify_secret"], values["recipes"])

        if values["llm_base_url"]:
            if not values["llm_model"]:
                raise ConfigError("OPS_LLM_MODEL is not set: the LLM runner needs the model "
                                  "name along with OPS_LLM_BASE_URL")
        elif values["llm_model"] or values["llm_api_key"]:
            raise ConfigError("OPS_LLM_BASE_URL is not set: OPS_LLM_MODEL and OPS_LLM_API_KEY "
                              "need the model server's URL")
        return cls(**values)


def check_notify(urls: tuple[NotifyTarget, ...], secret: str | None,
                 recipes: RecipeBook | None) -> None:
    """Every notification is signed: any URL (OPS_NOTIFY_URLS, a recipe's ``notify``) needs
    OPS_NOTIFY_SECRET."""
    if secret is not None:
        return
    if urls:
        where = "OPS_NOTIFY_URLS is set"
    else:
        named = [r.name for r in (recipes.recipes if recipes else ()) if r.notify]
        if not named:
            return
        where = f"recipe {named[0]!r} has notify URLs"
    raise ConfigError(f"OPS_NOTIFY_SECRET is not set, but {where}: every notification is "
                      f"signed with it (at least {MIN_SECRET_LENGTH} characters); make one "
                      f"with: {MAKE_A_TOKEN}")


def _check_recipe_user(values: dict[str, Any], root: bool) -> None:
    """Recipes never run as root outside dev mode, nor as a user the service cannot become."""
    user = values["recipe_user"]
    if user is not None and not root and user.uid != os.geteuid():
        raise ConfigError(f"OPS_RECIPE_USER={user.name}: only a service running as root can run "
                          "recipes as another user; unset it to run them as the service's user")
    if values["recipes"] is not None and root and user is None and not values["dev_mode"]:
        raise ConfigError("OPS_RECIPE_USER is not set: as root, recipes must run as an "
                          "unprivileged user (root can read every secret of the service); "
                          "set OPS_RECIPE_USER=<user>, or run the service as an ordinary user")


# -- read before the app exists ----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """gunicorn's settings (``gunicorn.conf.py``) and the log set-up's."""

    bind: str = setting("OPS_BIND", "127.0.0.1:8080",
                        help="where gunicorn listens (host:port or unix:/path)")
    # More than one needs the Supabase store: gunicorn.conf.py refuses otherwise.
    workers: int = setting("WEB_CONCURRENCY", 1, low=1, high=1024,
                           help="gunicorn worker processes")
    worker_connections: int = setting("OPS_WORKER_CONNECTIONS", 1000, low=1, high=1_000_000,
                                      help="connections per worker (each stream holds one)")
    # 0 turns gunicorn's own timeouts and keep-alive off, as gunicorn reads them.
    timeout: int = setting("OPS_GUNICORN_TIMEOUT", 30, low=0, high=86_400,
                           help="seconds a worker's event loop may stay blocked")
    graceful_timeout: int = setting("OPS_GRACEFUL_TIMEOUT", 20, low=0, high=86_400,
                                    help="seconds a stopping worker gets to finish")
    keepalive: int = setting("OPS_KEEPALIVE", 5, low=0, high=3600,
                             help="seconds gunicorn keeps an idle connection")
    access_log: str | None = setting("OPS_ACCESS_LOG", None,
                                     help="gunicorn's access log: - for stderr, or a path")
    log_level: str = setting("OPS_LOG_LEVEL", "INFO",
                             help="level of the app's and gunicorn's logs")
    log_json: bool = setting("OPS_LOG_JSON", False, help="every log line a JSON object")
    # prometheus_client reads the variable itself in each worker; gunicorn.conf.py sets it
    # (a temporary directory) when several workers need one.
    metrics_dir: str | None = setting(
        "PROMETHEUS_MULTIPROC_DIR", None,
        shown="a temporary directory when WEB_CONCURRENCY > 1",
        help="where workers share their metrics")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        return cls(**read_env(cls, environ))


@dataclasses.dataclass(frozen=True)
class CliSettings:
    """The ``flask ops`` client's settings (the admin token is :class:`Settings`')."""

    url: str = setting("OPS_URL", "http://127.0.0.1:8080",
                       help="the server the task commands call")
    token: str | None = setting("OPS_TOKEN", None, repr=False,
                                help="the token the task commands send (a named token of the "
                                "credentials file); SETTINGS_ADMIN_TOKEN when unset")


SETTINGS_CLASSES = (Settings, ServerSettings, CliSettings)
