"""The HTTP layer: one blueprint per resource under ``/ops``, all admin-gated but ``/ops/ui`` and
``/ops/openapi.json``."""

from flask import Flask

from .parsing import TaskIdConverter


def register_blueprints(app: Flask) -> None:
    from . import health, openapi, recipes, stream, tasks, ui

    app.url_map.converters["task_id"] = TaskIdConverter
    app.register_blueprint(tasks.bp)
    app.register_blueprint(stream.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(recipes.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(ui.bp)
