"""``GET /metrics`` (the Prometheus text format) and the timing of every request."""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST

from ..auth.metrics import metrics_access_required
from ..metrics import Metrics

EXTENSION = "ops_metrics"

bp = Blueprint("metrics", __name__)


def init_app(app: Flask, metrics: Metrics) -> None:
    """Serve ``/metrics`` and time every request."""
    app.extensions[EXTENSION] = metrics
    app.register_blueprint(bp)

    @app.before_request
    def start_timer():
        g.metrics_started = time.perf_counter()

    @app.after_request
    def observe_latency(response):
        started = g.get("metrics_started")
        if started is not None:
            endpoint = request.url_rule.rule if request.url_rule else "unmatched"
            metrics.request_latency.labels(request.method, endpoint,
                                           str(response.status_code)).observe(
                time.perf_counter() - started)
        return response


@bp.get("/metrics")
@metrics_access_required
def metrics_endpoint():
    body = current_app.extensions[EXTENSION].exposition()
    return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST,
                                   "Cache-Control": "no-store"})
