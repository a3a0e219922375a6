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
    if settings.uses_supabase:
        _check_supabase(settings)
    elif server.cfg.workers > 1:
        sys.exit(f"error: the in-process store keeps tasks in one process, so gunicorn must run "
                 f"one worker (got {server.cfg.workers}); set WEB_CONCURRENCY=1 or configure "
                 f"SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY")


def _check_supabase(settings):
    """Both tables and all their columns must answer before any worker starts.

    The check runs in a forked child so that the master never imports the HTTP client
    and ``ssl`` (each worker monkey-patches them after its own fork)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            from app.store import StoreUnavailable, make_store

            store = make_store(settings)
            try:
                store.check()
                code = 0
            except StoreUnavailable as error:
                print(f"error: {error}", file=sys.stderr)
            finally:
                store.close()
        finally:
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(1)  # the child said why, in one line


def worker_exit(server, worker):
    """End this worker's tasks cleanly: stop taking new ones, fail what cannot finish."""
    app = getattr(worker, "wsgi", None)
    ops = getattr(app, "extensions", {}).get("ops") if app is not None else None
    if ops is not None:
        ops.executor.shutdown(grace=max(1.0, server.cfg.graceful_timeout / 2))
        ops.store.close()
