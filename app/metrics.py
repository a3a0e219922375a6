"""The service's Prometheus metrics: one registry per app, no HTTP (``/metrics`` is
:mod:`app.http.metrics`).

One :class:`Metrics` per app. Under several gunicorn workers ``PROMETHEUS_MULTIPROC_DIR`` is
set (``gunicorn.conf.py`` sees to it) before any worker imports ``prometheus_client``: each
worker then writes its values to files there, and a scrape of any worker sums them all.
Gauges are per-process values summed over the live workers (``livesum``).

Task and event figures come from :class:`app.store.observed.ObservedStore`, queued and running
tasks from the executor's counts, open streams from the stream tracker
(:class:`app.stream.StreamTracker`), request latency from the HTTP layer's hooks.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Request latency buckets in seconds: API calls take milliseconds; a slow store, seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

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
