"""The servers under test: ours and the Flask-SSE peer (each gunicorn with one gevent worker),
and the redis-server the peer needs, each on a free loopback port."""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
from pathlib import Path

from .procs import (
    Process,
    children,
    cpu_seconds,
    free_port,
    rss_kib,
    run_delay_seconds,
    wait_answering,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "bench-admin-token-0123456789"
STREAM_SECRET = "bench-stream-secret-0123456789"
START_TIMEOUT = 30.0


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the service's own settings, plus ``extra``."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("OPS_", "SUPABASE_", "SETTINGS_", "DEV_LOCAL", "PEER_"))}
    return {**base, "PYTHONUNBUFFERED": "1", **extra}


def request(port: int, method: str, path: str, body=None, headers=None, timeout: float = 10.0):
    """One HTTP request to 127.0.0.1:``port``; return (status, decoded JSON or text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = json.dumps(body) if body is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=payload, headers=all_headers)
        response = conn.getresponse()
        text = response.read().decode()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text
    finally:
        conn.close()


class Gunicorn:
    """A gunicorn master with one gevent worker; ``worker_pid`` is what gets measured."""

    def __init__(self, logdir: Path, argv: list[str], env: dict[str, str], *, side: str,
                 root: Path = ROOT):
        self.side = side
        self.port = int(env["BENCH_PORT"])
        self.process = Process(f"{side}-gunicorn", argv, logdir=logdir, env=env, cwd=root)
        try:
            wait_answering(f"http://127.0.0.1:{self.port}/healthz", self.process.popen,
                           name=f"the {self.side} server", timeout=START_TIMEOUT,
                           log=self.process.log)
            self.worker_pid = wait_until(lambda: children(self.process.pid), 5,
                                         message="its worker")[0]
        except BaseException:
            self.process.stop()
            raise

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.worker_pid)

    def rss_kib(self) -> int:
        return rss_kib(self.worker_pid)

    def run_delay_seconds(self) -> float:
        return run_delay_seconds(self.worker_pid)

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Ours(Gunicorn):
    """``gunicorn -c gunicorn.conf.py wsgi:app`` on the in-process store and the dev runner,
    from this checkout or, as ``side="before"``, from another one (``root``); its logs as
    shipped (one line per request and per task change, to the log file)."""

    def __init__(self, logdir: Path, *, side: str = "ours", root: Path = ROOT, **settings: str):
        port = free_port()
        env = clean_env(**{"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_STREAM_SECRET": STREAM_SECRET,
                           "DEV_LOCAL_LLM": "1", "WEB_CONCURRENCY": "1",
                           "OPS_BIND": f"127.0.0.1:{port}", "BENCH_PORT": str(port),
                           **settings})
        argv = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
        super().__init__(logdir, argv, env, side=side, root=root)

    headers = {"X-Admin-Token": ADMIN}

    def create_task(self, title: str) -> int:
        status, answer = request(self.port, "POST", "/ops/tasks", {"title": title}, self.headers)
        if status != 201:
            raise RuntimeError(f"POST /ops/tasks answered {status}: {answer}")
        return answer["id"]

    def stream_path(self, task_id: int) -> str:
        return f"/ops/tasks/{task_id}/stream"

    def streams_open(self) -> int:
        return request(self.port, "GET", "/ops/stats", headers=self.headers)[1]["streams_open"]


class Redis:
    """redis-server on a free port with a temporary directory, no persistence."""

    def __init__(self, logdir: Path, maxclients: int = 20_000):
        self.port = free_port()
        workdir = logdir / "redis"
        workdir.mkdir(exist_ok=True)
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(workdir), "--save", "", "--appendonly", "no",
                "--maxclients", str(maxclients), "--daemonize", "no", "--logfile", ""]
        self.process = Process("redis", argv, logdir=logdir)
        try:
            wait_until(self._ready, START_TIMEOUT, message=f"redis-server on port {self.port}")
        except BaseException:
            self.process.stop()
            raise

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _ready(self) -> bool:
        self.process.check_alive()
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def rss_kib(self) -> int:
        return rss_kib(self.process.pid)


class Peer(Gunicorn):
    """The Flask-SSE app of ``bench/peer`` on its own redis-server."""

    def __init__(self, logdir: Path, worker_connections: int = 1000):
        self.redis = Redis(logdir)
        port = free_port()
        env = clean_env(PEER_REDIS_URL=self.redis.url, PEER_BIND=f"127.0.0.1:{port}",
                        PEER_WORKER_CONNECTIONS=str(worker_connections),
                        PEER_ACCESS_LOG=str(logdir / "peer-access.log"), BENCH_PORT=str(port))
        argv = [sys.executable, "-m", "gunicorn", "-c", "bench/peer/gunicorn.conf.py",
                "bench.peer.app:app"]
        try:
            super().__init__(logdir, argv, env, side="peer")
        except BaseException:
            self.redis.process.stop()
            raise

    headers: dict[str, str] = {}

    def publish(self, channels: int, ticks: int, interval: float, kind: str = "tick") -> None:
        """Start publishing: ``channels`` publishers, each ``ticks`` events ``interval`` apart."""
        status, answer = request(self.port, "POST", "/publish",
                                 {"channels": channels, "ticks": ticks, "interval": interval,
                                  "kind": kind})
        if status != 202:
            raise RuntimeError(f"POST /publish answered {status}: {answer}")

    def stream_path(self, channel: int) -> str:
        return f"/stream?channel=task-{channel}"

    def cpu_seconds(self) -> float:
        """The worker and redis-server together: the peer's pub/sub runs in both."""
        return super().cpu_seconds() + self.redis.cpu_seconds()

    def rss_kib(self) -> int:
        return super().rss_kib() + self.redis.rss_kib()

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.redis.process.stop()
