"""gunicorn settings, read from the environment: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Event streams are long requests, so the gevent worker serves them (many per process).
With the in-process store all tasks live in one process: exactly one worker then.
``docs/deploy.md`` explains each variable; ``docs/configuration.md`` lists them.
"""

import errno
import gc
import glob
import os
import shutil
import signal
import socket
import sys
import tempfile
from urllib.parse import urlsplit

# The project, importable wherever gunicorn was started from.
ROOT = os.path.dirname(os.path.abspath(__file__))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Before anything else: the environment holds the secrets, and a recipe of the same user
# could otherwise read them from /proc/<master pid>/environ (workers inherit it at fork).
from app.isolation import make_undumpable  # noqa: E402

make_undumpable()

# app.config imports neither Flask nor ssl: the master stays unpatched until each worker's fork.
from app import group_records  # noqa: E402
from app.config import ConfigError, ServerSettings, Settings, read_env  # noqa: E402

try:
    _server = ServerSettings.from_env()
    # The app believes X-Forwarded-For from the same list (app/proxy.py): one declaration.
    _proxies = read_env(Settings, names=["trusted_proxies"])["trusted_proxies"]
except ConfigError as error:
    sys.exit(f"error: {error}")

bind = _server.bind
workers = _server.workers
worker_class = "gevent"
worker_connections = _server.worker_connections
# Under gevent, timeout fires only when the event loop is blocked; open streams are fine.
timeout = _server.timeout
graceful_timeout = _server.graceful_timeout
keepalive = _server.keepalive
# X-Forwarded-Proto is believed only from these addresses. Keep it to the proxy's own address.
forwarded_allow_ips = ",".join(_proxies)
# The app logs one line per request (with its id); gunicorn's own access log is optional.
accesslog = _server.access_log
access_log_format = ('%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms '
                     'request_id=%({x-request-id}o)s')
errorlog = "-"
loglevel = _server.log_level.lower()
# Same format as the app's (JSON lines with OPS_LOG_JSON=1); credentials redacted.
logger_class = "app.logs.GunicornLogger"
control_socket_disable = True
# No max_requests (recycling would kill running tasks) and no preload (pools must start
# after the fork, and gevent must patch before anything is imported).

METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def on_starting(server):
    """Refuse to start, in one line, when the environment cannot run the service."""
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
    _refuse_a_busy_port(server)
    _prepare_metrics_dir(server)
    if settings.recipes is not None:
        # Workers inherit it at fork and record there the groups their recipes run in.
        group_records.install(group_records.GroupRecords.create())


def _refuse_a_busy_port(server):
    """Say in one line that the address is taken, where gunicorn would retry for 5 seconds
    and then print five lines. Sockets handed over (a re-exec, systemd) are ours already."""
    if (getattr(server, "LISTENERS", None) or "GUNICORN_FD" in os.environ
            or "LISTEN_FDS" in os.environ or server.cfg.reuse_port):
        return
    for address in server.cfg.address:
        if not isinstance(address, tuple):
            continue  # a unix socket: gunicorn replaces a stale file itself
        host, port = address[:2]
        probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                sys.exit(f"error: port {port} of {host} is in use by another program: stop it, "
                         f"or listen on another port (OPS_BIND={host}:9000; with make dev: "
                         f"PORT=9000 make dev)")
        finally:
            probe.close()


def when_ready(server):
    """One line that says where the service listens and with what."""
    settings = Settings.from_env()
    address = ", ".join(str(listener) for listener in server.LISTENERS) or bind
    store = ("Supabase at " + (urlsplit(settings.supabase_url).hostname or "?")
             if settings.uses_supabase else "in-process")
    # The runners build_runners() makes, named without importing them into the master.
    runners = [name for name, on in (("recipe", settings.recipes is not None),
                                     ("llm", settings.uses_llm)) if on]
    if settings.recipes is not None:
        runners[0] += f" ({len(settings.recipes)} from {settings.recipes.path})"
    if settings.dev_mode:  # it takes every task
        runners = ["dev, for every task (DEV_LOCAL_LLM=1)"]
    server.log.info("serving %s (dashboard at /ops/ui) · store: %s · runners: %s", address,
                    store, ", ".join(runners) or "none")


def _prepare_metrics_dir(server):
    """Workers share their metrics through files: a fresh directory for every start.

    Set before any worker is forked (and imports prometheus_client, which reads it once)."""
    directory = os.environ.get(METRICS_DIR)
    if directory:
        os.makedirs(directory, exist_ok=True)
        for stale in glob.glob(os.path.join(directory, "*.db")):  # a previous run's values
            os.remove(stale)
    elif server.cfg.workers > 1:
        directory = tempfile.mkdtemp(prefix="ops-metrics-")
        os.environ[METRICS_DIR] = directory
        server.ops_metrics_tmpdir = directory


def post_fork(server, worker):
    """Workers inherit the master's non-dumpable flag; set it again so that no worker
    depends on how it was started. And each connection's greenlet keeps no copy of the stack
    that spawned it: gevent's greenlet tree (a debugging aid) cost every idle stream about
    1 KB and a dozen objects for the collector to scan (bench/notes.md)."""
    make_undumpable()
    import gevent

    gevent.config.track_greenlet_tree = False


def child_exit(server, worker):
    """Kill the recipes a dead worker left running; drop its gauges (its counters stay:
    totals never go down)."""
    records = group_records.installed()
    if records is not None:
        killed = records.kill_groups_of(worker.pid)
        if killed:
            server.log.warning("worker %s died with recipes running: killed process group(s) %s",
                               worker.pid, ", ".join(map(str, killed)))
    if os.environ.get(METRICS_DIR):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    tmpdir = getattr(server, "ops_metrics_tmpdir", None)
    if tmpdir:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _grace(cfg):
    """The part of graceful_timeout that tasks get; streams and the store need the rest."""
    return max(1.0, cfg.graceful_timeout / 2)


def post_worker_init(worker):
    """Start background work; take over the stop signals, so that a stop ends tasks and
    streams at once, without a second exit cutting it short (app/lifecycle.py)."""
    from app.lifecycle import handle_signals, start_background

    start_background(worker.wsgi)
    handle_signals(worker.wsgi, _grace(worker.cfg), stop=worker.handle_exit,
                   quit=worker.handle_quit)
    # What exists now lives as long as the worker: out of the collector's sight, it no longer
    # makes each full collection scan it, pausing every stream (docs/performance.md).
    gc.freeze()


def worker_int(worker):
    """INT or QUIT: start ending tasks and streams; worker_exit waits for the end."""
    app = _app(worker)
    if app is not None:
        from app.lifecycle import begin_shutdown

        begin_shutdown(app, _grace(worker.cfg))


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
    """However the worker ends, its tasks end cleanly: no new ones, the rest failed; and it
    exits only once that is done (or the shutdown a signal started is)."""
    app = _app(worker)
    if app is not None:
        from app.lifecycle import shutdown

        shutdown(app, _grace(server.cfg))
    # The worker is done. Until it is reaped, the master sends it TERM again at each of its
    # turns (manage_workers, after a reload); one landing while the interpreter exits, when
    # Python has put the default handlers back, would kill it by the signal ("was sent
    # SIGTERM!"). Ignored handlers survive that.
    for stop_signal in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(stop_signal, signal.SIG_IGN)


def _app(worker):
    """The worker's app, once loaded (a worker can stop while it boots)."""
    app = getattr(worker, "wsgi", None)
    return app if app is not None and "services" in getattr(app, "extensions", {}) else None
