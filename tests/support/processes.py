"""Starting real programs for tests and for the benchmark: free ports, readiness, stopping."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def require_program(name: str, extra_dirs=()) -> str:
    """The program's path (on PATH, else in ``extra_dirs``); skipped locally when missing,
    a failure under CI."""
    import pytest  # here, so that the benchmark can use this module without pytest

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


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.05,
               message: str | Callable[[], str] = ""):
    """Poll ``predicate`` until it returns a true value and return that value; fail after
    ``timeout`` seconds (``message`` may be a callable, to describe the state at that time)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            what = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def wait_answering(url: str, process: subprocess.Popen, *, name: str, timeout: float,
                   log: Callable[[], str] = lambda: "") -> None:
    """Wait until ``GET url`` answers 200; fail at once, with ``log()``, if ``process``
    exits first, and with ``log()`` after ``timeout`` seconds."""
    def answering() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with {process.returncode}:\n{log()}")
        try:
            return requests.get(url, timeout=1).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # not listening, or still booting
            return False

    wait_until(answering, timeout=timeout, message=lambda: f"{name} on {url}\n{log()}")


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
