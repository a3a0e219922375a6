"""Processes the harness starts: each in its own process group, logged to a file, stopped for
sure (SIGTERM, then SIGKILL of the whole group) however the run ends.

Free ports, waiting for readiness and stopping a process group are the tests' own
(``tests.support.processes``), so both start programs in one way."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from tests.support.processes import free_port, stop_process_group, wait_answering, wait_until

__all__ = ["Process", "free_port", "wait_answering", "wait_until", "say", "raise_fd_limit",
           "children", "cpu_seconds", "run_delay_seconds", "rss_kib", "load_average"]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STARTED = time.monotonic()


def say(message: str) -> None:
    """One progress line on stderr, with the seconds since the harness started."""
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Process:
    """One started program; a context manager that stops it and its group on exit."""

    def __init__(self, name: str, argv: list[str], *, logdir: Path,
                 env: dict[str, str] | None = None, cwd: Path | None = None, stdin=None,
                 stdout=None):
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        try:
            self.popen = subprocess.Popen(
                argv, cwd=cwd, env=env, stdin=stdin,
                stdout=stdout if stdout is not None else self._log, stderr=self._log,
                start_new_session=True)
        except BaseException:
            self._log.close()
            raise

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log()}")

    def log(self, tail: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the group, wait up to ``timeout``, then SIGKILL whatever is left."""
        try:
            stop_process_group(self.popen, timeout=timeout)
        finally:
            self._log.close()

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (a gunicorn master's workers)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return [int(p) for p in listing.read().split()]
    except OSError:
        return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def run_delay_seconds(pid: int) -> float:
    """Time the process's main thread has spent ready to run but waiting for a CPU: the
    machine's noise, as this process felt it."""
    with open(f"/proc/{pid}/schedstat") as stat:
        return int(stat.read().split()[1]) / 1e9


def rss_kib(pid: int) -> int:
    """Resident memory of the process, in KiB."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def load_average() -> str:
    """The load averages, and the CPU pressure (the share of time some task waited for a CPU,
    over the last 10 and 60 s) where the kernel reports it."""
    one, five, fifteen = os.getloadavg()
    text = f"load {one:.2f} / {five:.2f} / {fifteen:.2f}"
    try:
        with open("/proc/pressure/cpu") as pressure:
            fields = dict(f.split("=") for f in pressure.readline().split()[1:3])
        text += f", CPU pressure {fields['avg10']}% / {fields['avg60']}%"
    except (OSError, KeyError, ValueError):
        pass
    return text
