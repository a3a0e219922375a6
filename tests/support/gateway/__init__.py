"""A small, strict PostgREST-compatible stand-in for the Supabase store's tests.

No PostgREST server can be installed here, so the tests point ``SUPABASE_URL`` at this
gateway: a separate process that serves the subset of PostgREST the store sends (see
:mod:`.rest`) over a real PostgreSQL, counts requests, and can be killed and started again
on the same port to stage an outage.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

from ..processes import ROOT, Service, free_port, wait_answering

SERVICE_KEY = "test-service-role-key-0123456789"


class GatewayProcess(Service):
    """``python -m tests.support.gateway`` on a free port over one database."""

    def __init__(self, dsn: str, key: str = SERVICE_KEY):
        self.dsn = dsn
        self.key = key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._tmp = tempfile.TemporaryDirectory(prefix="ops-gateway-")
        self.log_path = Path(self._tmp.name) / "gateway.log"
        self.process: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        """The variables that point the service at this gateway."""
        return {"SUPABASE_URL": self.url, "SUPABASE_SERVICE_ROLE_KEY": self.key}

    def start(self) -> GatewayProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.gateway", "--port", str(self.port),
                 "--dsn", self.dsn, "--key", self.key],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_answering(f"{self.url}/_gateway/stats", self.process, name="the gateway",
                       timeout=20, log=lambda: self.log_path.read_text(errors="replace"))
        return self

    def kill(self) -> None:
        """Stop at once (connections reset, as in a network outage)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def counts(self) -> dict[str, int]:
        return requests.get(f"{self.url}/_gateway/stats", timeout=5).json()

    def lose_answers(self, count: int) -> None:
        """The next ``count`` writes commit, then their connection drops unanswered."""
        requests.post(f"{self.url}/_gateway/lose_answers", params={"count": count},
                      timeout=5).raise_for_status()

    def reset_counts(self) -> None:
        requests.post(f"{self.url}/_gateway/reset", timeout=5).raise_for_status()

    def close(self) -> None:
        try:
            self.kill()
        finally:
            self._tmp.cleanup()
