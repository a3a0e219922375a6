"""Stopping a worker process cleanly: end its tasks, then its notifications, then its streams,
then its store.

gunicorn's hooks drive it (``gunicorn.conf.py``):

- TERM (``systemctl stop``, or the old worker of a reload): gunicorn's graceful stop, and
  :func:`shutdown` starts at once, rather than after gunicorn's wait for the open streams.
- INT and QUIT (a quick stop): gunicorn's own handler runs ``worker_int``, which starts
  :func:`shutdown` too, and exits the worker.
- However the worker ends, ``worker_exit`` calls :func:`shutdown`, which waits for the one
  under way: the process exits only once its tasks, streams and store are closed.

Under gevent a signal handler runs inside the event loop's callback, where nothing may block
or switch (starting a thread does both): the handlers here only set flags and spawn a greenlet.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable

from flask import Flask

log = logging.getLogger(__name__)

EXTENSION = "lifecycle"
# What notifications get to go out at a stop (the tasks' endings among them), at most: a
# quarter of the grace, taken from the streams' wait, so that the stop fits in as before.
NOTIFY_GRACE = 5.0
Handler = Callable[[int, object], None]


class _Stopping:
    """One app's shutdown: it runs once; every other caller waits for its end."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.signalled = False  # a stop signal was passed on to gunicorn
        self.started = False
        self.done = threading.Event()


def _stopping(app: Flask) -> _Stopping:
    return app.extensions.setdefault(EXTENSION, _Stopping())


def start_background(app: Flask) -> None:
    """Start what runs beside requests in a server process (after gunicorn's fork)."""
    services = app.extensions["services"]
    services.executor.start()  # a shared queue's tasks are claimed without a request first
    if services.retention is not None:
        services.retention.start()


def shutdown(app: Flask, grace: float) -> None:
    """Stop taking tasks; give running ones ``grace`` seconds to reach a checkpoint (they end
    ``failed``, reason ``shutdown``, as does every task still queued); give the notifications
    due a few seconds more (what is left is logged); then end every stream (clients resume
    elsewhere with Last-Event-ID), close the store and wait up to ``grace`` for the streams'
    last writes. Runs once: a later or concurrent call waits for its end."""
    stopping = _stopping(app)
    with stopping.lock:
        first, stopping.started = not stopping.started, True
    if not first:
        stopping.done.wait()
        return
    try:
        log.info("shutting down: running tasks get %.1fs to stop, then streams end", grace)
        services = app.extensions["services"]
        if services.retention is not None:
            services.retention.stop()
        services.executor.shutdown(grace)
        notified = time.monotonic()
        services.notifier.close(min(grace / 4, NOTIFY_GRACE))  # it reads the store: first
        streams_grace = max(0.1, grace - (time.monotonic() - notified))
        services.streams.close_all()
        services.store.close()  # wakes every stream still waiting, which then sees it must end
        services.audit.close()  # the refusal counts still open, and what waits to be written
        services.idempotency.close()
        if not services.streams.wait_closed(streams_grace):
            log.warning("shutting down: %d streams still open after %.1fs",
                        services.streams.open, streams_grace)
    finally:
        stopping.done.set()


def begin_shutdown(app: Flask, grace: float) -> None:
    """Start :func:`shutdown` without waiting for it; safe in a signal handler, gevent or not."""
    def run() -> None:
        try:
            shutdown(app, grace)
        except Exception:
            log.exception("shutting down failed")

    if _gevent_threading():
        import gevent

        gevent.spawn(run)  # only schedules it: no switch inside the loop's callback
    else:
        threading.Thread(target=run, name="ops-shutdown", daemon=True).start()


def handle_signals(app: Flask, grace: float, *, stop: Handler, quit: Handler) -> None:
    """Install the worker's stop signals over gunicorn's own handlers, ``stop`` (TERM) and
    ``quit`` (INT, QUIT), which they still call. HUP re-reads the credentials file.

    TERM also starts :func:`shutdown` at once. Only the first INT or QUIT, and none once the
    worker is stopping, reaches ``quit``: Ctrl-C sends INT to the worker and to the master,
    which passes it on as QUIT, and each ``quit`` exits the process (the second exit would
    land in the middle of the first one's shutdown and cut it short)."""
    stopping = _stopping(app)

    def on_term(signum, frame) -> None:
        stopping.signalled = True
        stop(signum, frame)
        begin_shutdown(app, grace)

    def on_quit(signum, frame) -> None:
        if stopping.signalled:
            return
        stopping.signalled = True
        quit(signum, frame)

    def on_hup(signum, frame) -> None:
        # gunicorn's worker would die of it (its default action); here it re-reads the
        # credentials file at the next request (a flag: nothing may block in a handler).
        credential_file = app.extensions["ops_auth"].file
        if credential_file is not None:
            credential_file.reload_soon()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_quit)
    signal.signal(signal.SIGQUIT, on_quit)
    signal.signal(signal.SIGHUP, on_hup)
    # As gunicorn does: a TERM must not interrupt the system calls of requests being served.
    signal.siginterrupt(signal.SIGTERM, False)


def _gevent_threading() -> bool:
    """True in a gevent worker, where ``threading`` makes greenlets."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")
