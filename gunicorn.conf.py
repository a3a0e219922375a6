"""gunicorn settings, read from the environment: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Event streams are long requests, so the gevent worker serves them (many per process).
With the in-process store all tasks live in one process: exactly one worker then.
"""

import os
import sys

bind = os.environ.get("OPS_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_class = "gevent"
worker_connections = int(os.environ.get("OPS_WORKER_CONNECTIONS", "1000"))
# Under gevent, timeout fires only when the event loop is blocked; open streams are fine.
timeout = int(os.environ.get("OPS_GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("OPS_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
accesslog = os.environ.get("OPS_ACCESS_LOG", "-")
errorlog = "-"
control_socket_disable = True
# No max_requests (recycling would kill running tasks) and no preload (pools must start
# after the fork, and gevent must patch before anything is imported).


def on_starting(server):
    """Refuse to start, in one line, when the environment cannot run the service."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from app.config import ConfigError, Settings

    try:
        settings = Settings.from_env()
    except ConfigError as error:
        sys.exit(f"error: {error}")
    if not settings.uses_supabase and server.cfg.workers > 1:
        sys.exit(f"error: the in-process store keeps tasks in one process, so gunicorn must run "
                 f"one worker (got {server.cfg.workers}); set WEB_CONCURRENCY=1 or configure "
                 f"SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY")


def _grace(cfg):
    """The part of graceful_timeout that tasks get; streams and the store need the rest."""
    return max(1.0, cfg.graceful_timeout / 2)


def post_worker_init(worker):
    """Start background work; on SIGTERM end tasks and streams at once (app/lifecycle.py)."""
    from app.lifecycle import on_sigterm, start_background

    start_background(worker.wsgi)
    on_sigterm(worker.wsgi, _grace(worker.cfg), then=worker.handle_exit)


def worker_exit(server, worker):
    """However the worker ends, its tasks end cleanly: no new ones, the rest failed."""
    app = getattr(worker, "wsgi", None)
    if app is not None and "ops" in getattr(app, "extensions", {}):
        from app.lifecycle import shutdown

        shutdown(app, _grace(server.cfg))
