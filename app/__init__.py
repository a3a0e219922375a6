"""Ops Orchestrator: create build/deploy tasks over HTTP and stream their progress over SSE."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .config import ConfigError, Settings
from .isolation import running_as_root

if TYPE_CHECKING:  # gunicorn's master imports app.config before gevent patches: no Flask yet
    from flask import Flask

__all__ = ["ConfigError", "Settings", "create_app"]

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, store=None) -> Flask:
    """Build the WSGI app from ``settings`` (default: the environment).

    ``store`` replaces the configured store (tests). Raises ConfigError when the settings
    cannot run the service."""
    from flask import Flask

    from . import auth, http
    from .audit import AuditTrail, make_audit_log
    from .cli import cli as ops_cli
    from .config import check_notify
    from .credential_file import CredentialFile
    from .executor import Capabilities, Executor, build_runners
    from .metrics import Metrics
    from .notify import make_notifier
    from .recipes import RecipeBook
    from .services import EXTENSION, Services
    from .store import ObservedStore, make_store
    from .store.idempotency import make_idempotency_keys
    from .store.retention import RetentionSweeper
    from .stream import StreamTracker

    settings = settings or Settings.from_env()
    # No app-wide /static/ route: the dashboard serves its own files (/ops/ui/static/), and
    # every public route is one docs/security.md lists.
    app = Flask(__name__, static_folder=None)
    app.config.from_mapping(MAX_CONTENT_LENGTH=settings.max_request_bytes, JSON_SORT_KEYS=False)
    app.json.sort_keys = False

    if settings.dev_mode and settings.recipes is not None and settings.recipe_user is None \
            and running_as_root():
        # Dev mode runs no recipe, but the same settings outside it would not start.
        log.warning("OPS_RECIPE_USER is not set: as root, outside dev mode, the server "
                    "refuses to start with recipes until it names an unprivileged user")
    if settings.stream_secret_is_fallback and not settings.dev_mode:  # dev mode: the norm
        log.warning("OPS_STREAM_SECRET is not set: stream tokens are signed with the admin "
                    "token; set OPS_STREAM_SECRET in production")
    check_notify(settings.notify_urls, settings.notify_secret, settings.recipes)
    metrics = Metrics()
    store = ObservedStore(store or make_store(settings), metrics)
    notifier = make_notifier(settings, store)
    if notifier.enabled:
        store.observe(notifier)  # the store layer does not import this one: it is told
    runners = build_runners(settings)

    def count_tasks(queued: int, running: int) -> None:
        metrics.tasks_queued.set(queued)
        metrics.tasks_running.set(running)

    executor = Executor(store, runners, workers=settings.workers,
                        queue_size=settings.queue_size, task_timeout=settings.task_timeout,
                        # a store shared by processes is watched for cancels at its poll pace
                        watch_interval=store.cancel_poll_seconds or 1.0, on_counts=count_tasks,
                        capabilities=Capabilities(
                            runners=tuple(runners),
                            recipes=tuple(r.name for r in (settings.recipes or RecipeBook())
                                          .recipes),
                            pools=settings.pools),
                        heartbeat_seconds=settings.supabase_lease_seconds,
                        live_seconds=settings.supabase_orphan_seconds)
    audit = AuditTrail(make_audit_log(settings, store))
    keys = make_idempotency_keys(settings)
    retention = (RetentionSweeper(store, settings.retention_seconds,
                                  interval=settings.retention_interval,
                                  also=(audit.purge, keys.purge))
                 if settings.retention_seconds else None)
    tokens = auth.StreamTokens(settings.stream_secrets, settings.stream_token_ttl)
    app.extensions[EXTENSION] = Services(
        settings=settings, store=store, executor=executor, tokens=tokens,
        streams=StreamTracker(settings.max_streams, gauge=metrics.streams_open,
                              per_task=settings.max_streams_per_task),
        audit=audit, idempotency=keys, notifier=notifier, retention=retention)

    def credentials_reloaded(ok: bool, detail: dict) -> None:
        audit.record("credentials.reload", "ok" if ok else "error", detail=detail)

    credential_file = (CredentialFile(settings.tokens_file, on_reload=credentials_reloaded)
                       if settings.tokens_file else None)
    auth.init_app(app, auth.Credentials(
        admin_token=settings.admin_token, stream_tokens=tokens, dev_mode=settings.dev_mode,
        metrics_token=settings.metrics_token, file=credential_file,
        proxy_header=settings.auth_proxy_header,
        proxy_default_role=settings.auth_proxy_default_role))
    http.init_app(app, settings, metrics)
    app.cli.add_command(ops_cli)
    return app
