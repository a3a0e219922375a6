"""Ops Orchestrator: create build/deploy tasks over HTTP and stream their progress over SSE."""

from __future__ import annotations

import logging

from flask import Flask

from .config import ConfigError, Settings

__all__ = ["ConfigError", "Settings", "create_app"]

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, store=None) -> Flask:
    """Build the WSGI app from ``settings`` (default: the environment).

    ``store`` replaces the configured store (tests). Raises ConfigError when the settings
    cannot run the service."""
    from .auth.stream_tokens import StreamTokens
    from .cli import ops as ops_cli
    from .errors import register_error_handlers
    from .executor import Executor, build_runners
    from .extensions import Ops
    from .http import register_blueprints, security
    from .logs import init_request_logging
    from .metrics import MeteredStreamTracker, Metrics, init_metrics
    from .proxy import TrustedProxyFix
    from .retention import RetentionSweeper
    from .store import ObservedStore, make_store

    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config.from_mapping(MAX_CONTENT_LENGTH=settings.max_request_bytes, JSON_SORT_KEYS=False)
    app.json.sort_keys = False

    if settings.stream_secret_is_fallback:
        log.warning("OPS_STREAM_SECRET is not set: stream tokens are signed with the admin "
                    "token; set OPS_STREAM_SECRET in production")
    metrics = Metrics()
    store = ObservedStore(store or make_store(settings), metrics)
    runners = build_runners(settings)

    def count_tasks(queued: int, running: int) -> None:
        metrics.tasks_queued.set(queued)
        metrics.tasks_running.set(running)

    executor = Executor(store, runners, workers=settings.workers,
                        queue_size=settings.queue_size, task_timeout=settings.task_timeout,
                        # a store shared by processes is watched for cancels at its poll pace
                        watch_interval=store.cancel_poll_seconds or 1.0, on_counts=count_tasks)
    retention = (RetentionSweeper(store, settings.retention_seconds,
                                  interval=settings.retention_interval)
                 if settings.retention_seconds else None)
    app.extensions["ops"] = Ops(
        settings=settings, store=store, executor=executor,
        tokens=StreamTokens(settings.stream_secrets, settings.stream_token_ttl),
        streams=MeteredStreamTracker(metrics, settings.max_streams), retention=retention)

    register_error_handlers(app)
    register_blueprints(app)
    security.init_app(app, settings.cors_origins)
    init_request_logging(app)
    init_metrics(app, metrics)
    app.cli.add_command(ops_cli)
    app.wsgi_app = TrustedProxyFix(app.wsgi_app, settings.trusted_proxies)
    return app
