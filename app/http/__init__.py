"""The HTTP layer: one blueprint per resource under ``/ops``, each view requiring a role but
``/ops/ui`` (and ``/``, ``/ops/``, which lead to it) and ``/ops/openapi.json``; the one error
map, request logs, the audit trail's recording, security headers, ``/metrics``."""

from __future__ import annotations

from flask import Flask

from .parsing import TaskIdConverter


def init_app(app: Flask, settings, metrics) -> None:
    """Register every blueprint and request hook on ``app``."""
    from . import (
        audit,
        errors,
        health,
        identity,
        notifications,
        openapi,
        recipes,
        request_log,
        security,
        stream,
        tasks,
        ui,
        workers,
    )
    from . import metrics as metrics_view
    from .proxy import TrustedProxyFix
    from .task_log import bp as task_log_bp

    app.url_map.converters["task_id"] = TaskIdConverter
    for blueprint in (tasks.bp, task_log_bp, stream.bp, notifications.bp, health.bp,
                      recipes.bp, openapi.bp, identity.bp, workers.bp, ui.bp, ui.home):
        app.register_blueprint(blueprint)
    audit.init_app(app)
    errors.init_app(app)
    security.init_app(app, settings.cors_origins)
    request_log.init_app(app)
    metrics_view.init_app(app, metrics)
    app.wsgi_app = TrustedProxyFix(app.wsgi_app, settings.trusted_proxies)
