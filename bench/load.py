"""Driving load generators from the harness: stream clients (``bench.clients``) and wrk."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

from .procs import Process, cpu_seconds


class StreamClients:
    """``paths`` spread over ``processes`` client processes; a context manager."""

    def __init__(self, logdir: Path, port: int, paths: list[str], *, headers: dict[str, str],
                 processes: int = 1, keep_pings: bool = False, open_timeout: float = 60,
                 max_seconds: float = 300, connect_concurrency: int = 100,
                 reconnect_delay: float | None = None, detail: bool = False):
        self.procs: list[Process] = []
        self._lines: queue.Queue = queue.Queue()
        processes = max(1, min(processes, len(paths)))
        try:
            for n in range(processes):
                proc = Process(f"clients-{n}", [sys.executable, "-m", "bench.clients"],
                               logdir=logdir, cwd=Path(__file__).resolve().parent.parent,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                self.procs.append(proc)
                threading.Thread(target=self._forward, args=(proc,), daemon=True).start()
                spec = {"port": port, "paths": paths[n::processes], "headers": headers,
                        "keep_pings": keep_pings, "open_timeout": open_timeout,
                        "max_seconds": max_seconds, "connect_concurrency": connect_concurrency,
                        "reconnect_delay": reconnect_delay, "detail": detail}
                proc.popen.stdin.write((json.dumps(spec) + "\n").encode())
                proc.popen.stdin.flush()
        except BaseException:
            self.stop()
            raise
        self.open_timeout = open_timeout

    def cpu_seconds(self) -> float:
        """CPU time the client processes have used so far (to judge them as a bottleneck)."""
        return sum(cpu_seconds(proc.pid) for proc in self.procs)

    def _forward(self, proc: Process) -> None:
        for line in proc.popen.stdout:
            self._lines.put((proc, json.loads(line)))

    def _collect(self, timeout: float, what: str) -> list[dict]:
        answers: dict[int, dict] = {}
        while len(answers) < len(self.procs):
            try:
                proc, answer = self._lines.get(timeout=timeout)
            except queue.Empty:
                late = [p for p in self.procs if p.pid not in answers]
                raise TimeoutError(f"stream clients gave no {what} within {timeout:.0f}s:\n"
                                   + "\n".join(p.log() for p in late)) from None
            answers[proc.pid] = answer
        return list(answers.values())

    def wait_open(self) -> dict:
        """Wait until every stream answered; return ``{"open", "failed", "errors",
        "started"}`` (``started``: when the first client process began opening them)."""
        answers = self._collect(self.open_timeout + 30, "open count")
        errors: dict[str, int] = {}
        for answer in answers:
            for error, count in answer["errors"].items():
                errors[error] = errors.get(error, 0) + count
        return {"open": sum(a["open"] for a in answers),
                "failed": sum(a["failed"] for a in answers), "errors": errors,
                "started": min(a["started"] for a in answers)}

    def finish(self, timeout: float = 60) -> dict:
        """Close every stream; return every event ``(created_at, arrival)``, the ping lists
        and, when asked for, each stream's ``detail`` (``bench.clients``)."""
        for proc in self.procs:
            proc.popen.stdin.write(b"stop\n")
            proc.popen.stdin.flush()
        answers = self._collect(timeout, "results")
        return {"events": [e for a in answers for e in a["events"]],
                "pings": [p for a in answers for p in a["pings"]],
                "closed_early": sum(a["closed_early"] for a in answers),
                "streams": [d for a in answers for d in a.get("streams", [])]}

    def stop(self) -> None:
        for proc in self.procs:
            try:
                proc.popen.stdin.close()
            except OSError:
                pass
            proc.stop(timeout=5)

    def __enter__(self) -> StreamClients:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_COUNT = re.compile(r"(\d+) requests in")
WRK_BAD = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
WRK_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def wrk(logdir: Path, url: str, *, seconds: float, connections: int, script: Path | None = None,
        env: dict[str, str] | None = None) -> tuple[float, int]:
    """Requests per second that ``wrk`` (one thread) got from ``url``, and how many it sent;
    raise on any error."""
    # A generous timeout: gunicorn's gevent worker serves keep-alive connections unevenly
    # when saturated, and a slow answer is a figure, not a failure.
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
            "--timeout", "10s"]
    if script is not None:
        argv += ["-s", str(script)]
    out = subprocess.run([*argv, url], capture_output=True, text=True, env=env,
                         timeout=seconds + 60)
    (logdir / "wrk.log").open("a").write(out.stdout + out.stderr)
    match = WRK_RATE.search(out.stdout)
    if out.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr or out.stdout}")
    bad = WRK_BAD.search(out.stdout)
    errors = WRK_ERRORS.search(out.stdout)
    if bad or (errors and any(int(n) for n in errors.groups())):
        raise RuntimeError(f"wrk saw failed requests against {url}:\n{out.stdout}")
    return float(match.group(1)), int(WRK_COUNT.search(out.stdout).group(1))
