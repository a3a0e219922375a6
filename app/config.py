"""Settings read from the environment, checked once at start-up.

Every tunable the service has is a field of :class:`Settings`; ``docs/configuration.md``
is the table users read. The names of the seed's variables (``SETTINGS_ADMIN_TOKEN``,
``DEV_LOCAL_LLM``, ``OPS_STREAM_SECRET``, ``SUPABASE_URL``, ``SUPABASE_SERVICE_ROLE_KEY``)
are users' and must not change; the others carry the ``OPS_`` prefix.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from .recipes import RecipeBook, RecipeFileError, load_recipes

MIN_SECRET_LENGTH = 16


class ConfigError(Exception):
    """The environment cannot run the service; the message says what to set."""


@dataclasses.dataclass(frozen=True)
class Settings:
    admin_token: str
    dev_mode: bool = False
    stream_secrets: tuple[str, ...] = ()
    stream_secret_is_fallback: bool = False
    supabase_url: str | None = None
    supabase_key: str | None = None
    workers: int = 4
    queue_size: int = 100
    heartbeat_seconds: float = 15.0
    retry_ms: int = 3000
    stream_token_ttl: float = 300.0
    dev_tick_seconds: float = 0.5
    dev_ticks: int = 4
    task_timeout: float = 3600.0
    max_streams: int = 900
    cors_origins: frozenset[str] = frozenset()
    retention_seconds: float | None = None
    retention_interval: float = 60.0
    stream_max_seconds: float = 3600.0
    stream_send_timeout: float = 30.0
    max_title_length: int = 200
    max_body_length: int = 10_000
    max_request_bytes: int = 64 * 1024
    # deployment: who may scrape /metrics, and whose X-Forwarded-* headers are believed
    metrics_token: str | None = None
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    # Runners (docs/runners.md): the recipe file, the recipe runner's limits, the model server.
    recipes: RecipeBook | None = None
    recipe_kill_grace: float = 5.0
    recipe_max_line_bytes: int = 4096
    recipe_log_lines_per_second: float = 200.0
    recipe_max_log_lines: int = 10_000
    llm_base_url: str | None = None
    llm_api_key: str | None = dataclasses.field(default=None, repr=False)
    llm_model: str | None = None
    llm_timeout: float = 60.0
    llm_batch_seconds: float = 1.0
    llm_batch_chars: int = 2000

    @property
    def uses_llm(self) -> bool:
        return bool(self.llm_base_url and self.llm_model)
    # The Supabase store (docs/supabase.md).
    supabase_poll_seconds: float = 0.5
    supabase_timeout_seconds: float = 5.0
    supabase_lease_seconds: float = 10.0
    supabase_orphan_seconds: float = 60.0
    supabase_outbox_events: int = 10_000

    @property
    def uses_supabase(self) -> bool:
        return bool(self.supabase_url and self.supabase_key)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``), or raise ConfigError."""
        env = os.environ if environ is None else environ
        admin_token = env.get("SETTINGS_ADMIN_TOKEN", "").strip()
        if not admin_token:
            raise ConfigError(
                "SETTINGS_ADMIN_TOKEN is not set: export SETTINGS_ADMIN_TOKEN=<a long random "
                "string> (admins send it as the X-Admin-Token header)"
            )

        raw_secret = env.get("OPS_STREAM_SECRET")
        if raw_secret is None:
            secrets, fallback = (admin_token,), True
        else:
            secrets = tuple(s.strip() for s in raw_secret.split(","))
            fallback = False
            if not all(secrets) or any(len(s) < MIN_SECRET_LENGTH for s in secrets):
                raise ConfigError(
                    f"OPS_STREAM_SECRET must be one or more comma-separated secrets of at least "
                    f"{MIN_SECRET_LENGTH} characters each (the first signs, all verify)"
                )

        url = env.get("SUPABASE_URL", "").strip() or None
        key = env.get("SUPABASE_SERVICE_ROLE_KEY", "").strip() or None
        if bool(url) != bool(key):
            missing = "SUPABASE_SERVICE_ROLE_KEY" if url else "SUPABASE_URL"
            raise ConfigError(f"{missing} is not set: the Supabase store needs both "
                              "SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY (or neither)")

        # The in-process store forgets everything at exit anyway: bound it by default.
        retention = _number(env, "OPS_RETENTION_SECONDS", float, 0 if url else 86_400, low=0,
                            high=10 * 365 * 86_400) or None
        lease = _number(env, "OPS_SUPABASE_LEASE_SECONDS", float, 10.0, low=0.1, high=3600)
        orphan = _number(env, "OPS_SUPABASE_ORPHAN_SECONDS", float, 60.0, low=0.3, high=86_400)
        if orphan < 3 * lease:
            raise ConfigError(f"OPS_SUPABASE_ORPHAN_SECONDS ({orphan:g}) must be at least three "
                              f"times OPS_SUPABASE_LEASE_SECONDS ({lease:g}), or live tasks "
                              f"could be taken for orphans")

        return cls(
            admin_token=admin_token,
            retention_seconds=retention,
            retention_interval=_number(env, "OPS_RETENTION_INTERVAL", float, 60.0, low=0.1,
                                       high=86_400),
            dev_mode=_flag(env, "DEV_LOCAL_LLM"),
            stream_secrets=secrets,
            stream_secret_is_fallback=fallback,
            supabase_url=url,
            supabase_key=key,
            workers=_number(env, "OPS_WORKERS", int, 4, low=1, high=256),
            queue_size=_number(env, "OPS_QUEUE_SIZE", int, 100, low=0, high=100_000),
            heartbeat_seconds=_number(env, "OPS_HEARTBEAT_SECONDS", float, 15.0, low=0.05, high=3600),
            retry_ms=_number(env, "OPS_SSE_RETRY_MS", int, 3000, low=0, high=600_000),
            stream_token_ttl=_number(env, "OPS_STREAM_TOKEN_TTL", float, 300.0, low=1, high=86_400),
            dev_tick_seconds=_number(env, "OPS_DEV_TICK_SECONDS", float, 0.5, low=0, high=3600),
            dev_ticks=_number(env, "OPS_DEV_TICKS", int, 4, low=1, high=1_000_000),
            task_timeout=_number(env, "OPS_TASK_TIMEOUT_SECONDS", float, 3600.0, low=1,
                                 high=7 * 86_400),
            cors_origins=frozenset(o.strip().rstrip("/") for o in
                                   env.get("OPS_CORS_ORIGINS", "").split(",") if o.strip()),
            max_streams=_number(env, "OPS_MAX_STREAMS", int, 900, low=1, high=1_000_000),
            stream_max_seconds=_number(env, "OPS_STREAM_MAX_SECONDS", float, 3600.0, low=1,
                                       high=7 * 86_400),
            stream_send_timeout=_number(env, "OPS_STREAM_SEND_TIMEOUT", float, 30.0, low=0.1,
                                        high=3600),
            max_title_length=_number(env, "OPS_MAX_TITLE_LENGTH", int, 200, low=1, high=10_000),
            max_body_length=_number(env, "OPS_MAX_BODY_LENGTH", int, 10_000, low=0, high=1_000_000),
            max_request_bytes=_number(env, "OPS_MAX_REQUEST_BYTES", int, 64 * 1024, low=1024,
                                      high=16 * 1024 * 1024),
            metrics_token=_secret(env, "OPS_METRICS_TOKEN"),
            trusted_proxies=_addresses(env, "FORWARDED_ALLOW_IPS", "127.0.0.1,::1"),
            **_runner_settings(env),
            supabase_poll_seconds=_number(env, "OPS_SUPABASE_POLL_SECONDS", float, 0.5,
                                          low=0.05, high=60),
            supabase_timeout_seconds=_number(env, "OPS_SUPABASE_TIMEOUT_SECONDS", float, 5.0,
                                             low=0.1, high=120),
            supabase_lease_seconds=lease,
            supabase_orphan_seconds=orphan,
            supabase_outbox_events=_number(env, "OPS_SUPABASE_OUTBOX_EVENTS", int, 10_000,
                                           low=1, high=10_000_000),
        )


def _runner_settings(env: Mapping[str, str]) -> dict:
    """The recipe runner's and the LLM runner's settings (docs/runners.md)."""
    recipes = None
    path = env.get("OPS_RECIPES", "").strip()
    if path:
        try:
            recipes = load_recipes(path)
        except RecipeFileError as error:
            raise ConfigError(f"OPS_RECIPES: {error}") from None

    base_url = env.get("OPS_LLM_BASE_URL", "").strip().rstrip("/") or None
    model = env.get("OPS_LLM_MODEL", "").strip() or None
    api_key = env.get("OPS_LLM_API_KEY", "").strip() or None
    if base_url:
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ConfigError("OPS_LLM_BASE_URL must be an http(s) URL such as "
                              "https://api.openai.com/v1 (chat completions are posted to "
                              "<base>/chat/completions)")
        if not model:
            raise ConfigError("OPS_LLM_MODEL is not set: the LLM runner needs the model name "
                              "along with OPS_LLM_BASE_URL")
    elif model or api_key:
        raise ConfigError("OPS_LLM_BASE_URL is not set: OPS_LLM_MODEL and OPS_LLM_API_KEY "
                          "need the model server's URL")
    return dict(
        recipes=recipes,
        recipe_kill_grace=_number(env, "OPS_RECIPE_KILL_GRACE_SECONDS", float, 5.0,
                                  low=0.1, high=600),
        recipe_max_line_bytes=_number(env, "OPS_RECIPE_MAX_LINE_BYTES", int, 4096,
                                      low=80, high=1024 * 1024),
        recipe_log_lines_per_second=_number(env, "OPS_RECIPE_LOG_LINES_PER_SECOND", float,
                                            200.0, low=1, high=100_000),
        recipe_max_log_lines=_number(env, "OPS_RECIPE_MAX_LOG_LINES", int, 10_000,
                                     low=1, high=10_000_000),
        llm_base_url=base_url, llm_api_key=api_key, llm_model=model,
        llm_timeout=_number(env, "OPS_LLM_TIMEOUT_SECONDS", float, 60.0, low=0.1, high=3600),
        llm_batch_seconds=_number(env, "OPS_LLM_BATCH_SECONDS", float, 1.0, low=0, high=60),
        llm_batch_chars=_number(env, "OPS_LLM_BATCH_CHARS", int, 2000, low=1, high=1_000_000),
    )


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _number(env, name, kind, default, *, low, high):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a{'n integer' if kind is int else ' number'}, "
                          f"got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {raw}")
    return value


def _secret(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip() or None
    if value is not None and len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(f"{name} must be at least {MIN_SECRET_LENGTH} characters long")
    return value


def _addresses(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    """Comma-separated IP addresses or networks (``10.0.0.0/8``), or ``*`` for any."""
    entries = tuple(e.strip() for e in env.get(name, default).split(",") if e.strip())
    for entry in entries:
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(f"{name} must list IP addresses or networks separated by commas "
                              f"(or *), got {entry!r}") from None
    return entries
