"""The servers under test: ours and the Flask-SSE peer (each gunicorn with one gevent worker),
and the redis-server the peer needs, each on a free loopback port."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
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
        self._start = (f"{side}-gunicorn", argv, logdir, env, root)
        self._launch()

    def _launch(self) -> None:
        name, argv, logdir, env, root = self._start
        self.process = Process(name, argv, logdir=logdir, env=env, cwd=root)
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

    def restart(self) -> None:
        """Stop the server (TERM: its graceful stop) and start it again on the same port,
        with the same settings, as a deploy does; return once it answers."""
        self.process.stop()
        self._launch()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Ours(Gunicorn):
    """``gunicorn -c gunicorn.conf.py wsgi:app`` on the in-process store and the dev runner,
    from this checkout or, as ``side="before"``, from another one (``root``); its logs as
    shipped (one line per request and per task change, to the log file)."""

    def __init__(self, logdir: Path, *, side: str = "ours", root: Path = ROOT,
                 gc_probe: bool = False, **settings: str):
        port = free_port()
        env = clean_env(**{"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_STREAM_SECRET": STREAM_SECRET,
                           "DEV_LOCAL_LLM": "1", "WEB_CONCURRENCY": "1",
                           "OPS_BIND": f"127.0.0.1:{port}", "BENCH_PORT": str(port),
                           **settings})
        config = "gunicorn.conf.py"
        self.gc_log = None
        if gc_probe:  # the same config, plus a probe of full collections (bench/gcprobe.py)
            self.gc_log = logdir / f"{side}-{port}-gc.log"
            env.update(BENCH_GC_CONF=str(root / config), BENCH_GC_LOG=str(self.gc_log))
            config = str(ROOT / "bench" / "gcprobe.py")
        argv = [sys.executable, "-m", "gunicorn", "-c", config, "wsgi:app"]
        super().__init__(logdir, argv, env, side=side, root=root)

    def full_collections(self, start: float, end: float) -> list[float]:
        """The duration (seconds) of each full collection that ended within [start, end]."""
        try:
            lines = self.gc_log.read_text().split("\n")
        except (AttributeError, OSError):  # no probe, or no full collection yet
            return []
        return [float(taken) for ended, taken in (line.split() for line in lines if line)
                if start <= float(ended) <= end]

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

    def subscriptions(self, channels: list[str]) -> int:
        """How many subscriptions ``channels`` have in all (``PUBSUB NUMSUB``)."""
        command = ["PUBSUB", "NUMSUB", *channels]
        payload = f"*{len(command)}\r\n" + "".join(f"${len(c)}\r\n{c}\r\n" for c in command)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(payload.encode())
            reply = b""
            # the reply: an array of names and counts, three lines a channel
            while reply.count(b"\r\n") < 1 + 3 * len(channels):
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("redis-server closed the connection")
                reply += chunk
        lines = reply.split(b"\r\n")
        return sum(int(line[1:]) for line in lines[1:] if line.startswith(b":"))


class Peer(Gunicorn):
    """The Flask-SSE app of ``bench/peer`` on its own redis-server."""

    def __init__(self, logdir: Path, worker_connections: int = 1000, side: str = "peer"):
        self.logdir = logdir
        self.publisher: Process | None = None
        self.redis = Redis(logdir)
        port = free_port()
        env = clean_env(PEER_REDIS_URL=self.redis.url, PEER_BIND=f"127.0.0.1:{port}",
                        PEER_WORKER_CONNECTIONS=str(worker_connections),
                        PEER_ACCESS_LOG=str(logdir / "peer-access.log"), BENCH_PORT=str(port))
        argv = [sys.executable, "-m", "gunicorn", "-c", "bench/peer/gunicorn.conf.py",
                "bench.peer.app:app"]
        try:
            super().__init__(logdir, argv, env, side=side)
        except BaseException:
            self.redis.process.stop()
            raise

    headers: dict[str, str] = {}

    def publish(self, channels: int, ticks: int, interval: float, kind: str = "tick") -> None:
        """Start publishing in the worker: ``channels`` publishers, each ``ticks`` events
        ``interval`` apart."""
        status, answer = request(self.port, "POST", "/publish",
                                 {"channels": channels, "ticks": ticks, "interval": interval,
                                  "kind": kind})
        if status != 202:
            raise RuntimeError(f"POST /publish answered {status}: {answer}")

    def publish_apart(self, channels: int, ticks: int, interval: float,
                      kind: str = "tick") -> None:
        """The same publishers, in a process of their own (``bench.peer.publisher``); return
        once it publishes."""
        self.publisher = Process(
            "peer-publisher", [sys.executable, "-m", "bench.peer.publisher", str(channels),
                               str(ticks), str(interval), kind],
            logdir=self.logdir, env=clean_env(PEER_REDIS_URL=self.redis.url), cwd=ROOT,
            stdout=subprocess.PIPE)
        ready = self.publisher.popen.stdout.readline()
        if ready.strip() != b"ready":
            self.publisher.check_alive()
            raise RuntimeError(f"the peer's publisher said {ready!r}")

    def stream_path(self, channel: int) -> str:
        return f"/stream?channel=task-{channel}"

    def streams_open(self, channels: int) -> int:
        """Streams subscribed to ``task-1`` ... ``task-{channels}`` (counted by Redis: a
        Flask-SSE stream sends its headers only with its first event)."""
        return self.redis.subscriptions([f"task-{n}" for n in range(1, channels + 1)])

    def cpu_seconds(self) -> float:
        """The worker and redis-server together: the peer's pub/sub runs in both."""
        return super().cpu_seconds() + self.redis.cpu_seconds()

    def rss_kib(self) -> int:
        return super().rss_kib() + self.redis.rss_kib()

    def stop(self) -> None:
        try:
            if self.publisher is not None:
                self.publisher.stop()
            super().stop()
        finally:
            self.redis.process.stop()
