"""Starting real programs for tests: free ports, gunicorn, and waiting for readiness."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent


def require_program(name: str, extra_dirs=()) -> str:
    """The program's path (on PATH, else in ``extra_dirs``); skipped locally when missing,
    a failure under CI."""
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(map(str, extra_dirs)))
    if path is None:
        message = f"{name} is not installed (make test installs it: tests/system-deps.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.05, message: str = ""):
    """Poll ``predicate`` until it returns a true value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


def stop_process_group(process: subprocess.Popen, sig: int = signal.SIGTERM,
                       timeout: float = 30) -> int | None:
    """Send ``sig`` to the process's group (started with ``start_new_session``), wait up to
    ``timeout``, then kill whatever is left; return the exit code (None if it had to be killed)."""
    code = None
    try:
        if process.poll() is None:
            os.killpg(process.pid, sig)
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    return code


class Service:
    """A program a test starts: ``with Service(...) as running:`` starts it, and closes it
    (stops it and removes its files) when the block ends, also when starting failed."""

    def start(self):
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()


class GunicornServer(Service):
    """``gunicorn -c gunicorn.conf.py wsgi:app`` on a free port, as users run it."""

    def __init__(self, env: dict[str, str] | None = None, workers: int = 1, args=()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._logdir = tempfile.TemporaryDirectory(prefix="ops-gunicorn-")
        self.log_path = Path(self._logdir.name) / "gunicorn.log"
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("OPS_", "SUPABASE_", "SETTINGS_", "DEV_LOCAL"))}
        self.env = {**base, "WEB_CONCURRENCY": str(workers), "OPS_BIND": f"127.0.0.1:{self.port}",
                    "PYTHONUNBUFFERED": "1", **(env or {})}
        self.args = list(args)
        self.process: subprocess.Popen | None = None

    def start(self) -> GunicornServer:
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", *self.args, "wsgi:app"],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_until(self._ready, timeout=30, message=f"gunicorn on {self.url}\n{self.log()}")
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {self.process.returncode}:\n{self.log()}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # not listening, or still booting
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        """Stop gunicorn (and anything left in its process group); return its exit code."""
        if self.process is None:
            return None
        try:
            return stop_process_group(self.process, sig, timeout)
        finally:
            self._log.close()

    def close(self) -> None:
        self.stop()
        self._logdir.cleanup()
