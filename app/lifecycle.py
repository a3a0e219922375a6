"""Stopping a worker process cleanly: end its tasks, then its streams, then its store."""

from __future__ import annotations

import logging
import signal
import threading

from flask import Flask

log = logging.getLogger(__name__)


def start_background(app: Flask) -> None:
    """Start what runs beside requests in a server process (after gunicorn's fork)."""
    retention = app.extensions["services"].retention
    if retention is not None:
        retention.start()


def shutdown(app: Flask, grace: float) -> None:
    """Stop taking tasks; give running ones ``grace`` seconds to reach a checkpoint (they end
    ``failed``, reason ``shutdown``, as does every task still queued); then end every stream
    (clients resume elsewhere with Last-Event-ID) and close the store. Safe to call twice."""
    services = app.extensions["services"]
    if services.retention is not None:
        services.retention.stop()
    services.executor.shutdown(grace)
    services.streams.close_all()
    services.store.close()  # wakes every stream still waiting, which then sees it must end


def on_sigterm(app: Flask, grace: float, then) -> None:
    """On SIGTERM run ``then`` (gunicorn's own handler) and start :func:`shutdown` at once,
    instead of only after gunicorn's graceful wait for open streams."""
    def handle(signum, frame):
        then(signum, frame)
        log.info("SIGTERM: ending tasks and streams (grace %.1fs)", grace)
        threading.Thread(target=shutdown, args=(app, grace), name="ops-shutdown",
                         daemon=True).start()
    signal.signal(signal.SIGTERM, handle)
