"""gunicorn started as users run it, on a free port, for tests and the benchmark."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .api import ADMIN, LiveAdmin
from .processes import ROOT, Service, free_port, stop_process_group, wait_answering


class GunicornServer(Service):
    """``gunicorn -c gunicorn.conf.py wsgi:app`` on a free port, as users run it."""

    def __init__(self, env: dict[str, str] | None = None, workers: int = 1, args=(),
                 user=None, python: str = sys.executable, cwd: Path = ROOT):
        """``user`` (a ``pwd`` entry) runs gunicorn as that user, with ``python``, from ``cwd``
        (the code's directory)."""
        self.port = free_port()
        self.user = user
        self.python = python
        self.cwd = cwd
        self.url = f"http://127.0.0.1:{self.port}"
        self._logdir = tempfile.TemporaryDirectory(prefix="ops-gunicorn-")
        self.log_path = Path(self._logdir.name) / "gunicorn.log"
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("OPS_", "SUPABASE_", "SETTINGS_", "DEV_LOCAL"))}
        self.env = {**base, "WEB_CONCURRENCY": str(workers), "OPS_BIND": f"127.0.0.1:{self.port}",
                    "PYTHONUNBUFFERED": "1", **(env or {})}
        self.args = list(args)
        self.process: subprocess.Popen | None = None
        self.admin = LiveAdmin(self.url, self.env.get("SETTINGS_ADMIN_TOKEN", ADMIN))

    def start(self) -> GunicornServer:
        self._log = open(self.log_path, "ab")
        as_user = {} if self.user is None else {
            "user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        self.process = subprocess.Popen(
            [self.python, "-m", "gunicorn", "-c", "gunicorn.conf.py", *self.args, "wsgi:app"],
            cwd=self.cwd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True, **as_user)
        wait_answering(f"{self.url}/healthz", self.process, name="gunicorn", timeout=30,
                       log=self.log)
        return self

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
