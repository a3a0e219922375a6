"""Prometheus metrics and ``GET /metrics``.

One :class:`Metrics` per app. Under several gunicorn workers ``PROMETHEUS_MULTIPROC_DIR`` is
set (``gunicorn.conf.py`` sees to it) before any worker imports ``prometheus_client``: each
worker then writes its values to files there, and a scrape of any worker sums them all.
Gauges are per-process values summed over the live workers (``livesum``).

Task and event figures come from :class:`app.store.observed.ObservedStore`, queued and running
tasks from the executor's counts, open streams from :class:`MeteredStreamTracker`, request
latency from the request hooks below.
"""

from __future__ import annotations

import functools
import hmac
import os
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               disable_created_metrics, generate_latest)
from prometheus_client.multiprocess import MultiProcessCollector

from .auth.admin import HEADER as ADMIN_HEADER, is_admin_token
from .errors import Unauthorized
from .extensions import ops
from .stream import StreamTracker

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Request latency buckets in seconds: API calls take milliseconds; a slow store, seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

bp = Blueprint("metrics", __name__)

# No ``*_created`` timestamp series beside each counter: they double the output for nothing.
disable_created_metrics()


class Metrics:
    """The service's metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = registry = CollectorRegistry()
        self.tasks_created = Counter(
            "ops_tasks_created", "Tasks created, by runner.", ["runner"], registry=registry)
        self.tasks_finished = Counter(
            "ops_tasks_finished", "Tasks that ended, by final status.", ["status"],
            registry=registry)
        self.tasks_running = Gauge(
            "ops_tasks_running", "Tasks running now.", registry=registry,
            multiprocess_mode="livesum")
        self.tasks_queued = Gauge(
            "ops_tasks_queued", "Tasks waiting in the executors' queues (queue depth).",
            registry=registry, multiprocess_mode="livesum")
        self.streams_open = Gauge(
            "ops_streams_open", "Event streams open now.", registry=registry,
            multiprocess_mode="livesum")
        self.events_written = Counter(
            "ops_events_written", "Task events written to the store.", registry=registry)
        self.store_errors = Counter(
            "ops_store_errors", "Store calls that failed with the store unavailable, by call.",
            ["operation"], registry=registry)
        self.request_latency = Histogram(
            "ops_http_request_duration_seconds",
            "Time to answer an HTTP request (for a stream: to start it), by route.",
            ["method", "endpoint", "status"], buckets=LATENCY_BUCKETS, registry=registry)

    def exposition(self) -> bytes:
        """The Prometheus text format: this process's values, or every worker's summed."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)


class MeteredStreamTracker(StreamTracker):
    """The stream tracker, also keeping the ``ops_streams_open`` gauge."""

    def __init__(self, metrics: Metrics, limit: int | None = None) -> None:
        super().__init__(limit)
        self._gauge = metrics.streams_open

    def admit(self) -> None:
        super().admit()
        self._gauge.inc()

    def release(self) -> None:
        super().release()
        self._gauge.dec()


def init_metrics(app: Flask, metrics: Metrics) -> None:
    """Serve ``/metrics`` and time every request."""
    app.extensions["ops_metrics"] = metrics
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


def metrics_access_required(view):
    """Admit the admin token (``X-Admin-Token``) or ``Authorization: Bearer $OPS_METRICS_TOKEN``."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        admin = request.headers.get(ADMIN_HEADER)
        if admin is not None:
            if not is_admin_token(admin):
                raise Unauthorized("invalid admin token")
            return view(*args, **kwargs)
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        expected = ops().settings.metrics_token
        if scheme.lower() == "bearer" and credentials:
            if expected and hmac.compare_digest(credentials.strip().encode(), expected.encode()):
                return view(*args, **kwargs)
            raise Unauthorized("invalid metrics token")
        raise Unauthorized(f"missing credentials: send the {ADMIN_HEADER} header or "
                           "Authorization: Bearer <OPS_METRICS_TOKEN>")
    return wrapped


@bp.get("/metrics")
@metrics_access_required
def metrics_endpoint():
    body = current_app.extensions["ops_metrics"].exposition()
    return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST,
                                   "Cache-Control": "no-store"})
