"""Real nginx with the shipped ``docs/deploy/nginx.conf`` (or ``nginx-sso.conf``), and
``curl -N`` reading a stream.

The server block is used as users install it; only the upstream ports, the listen address and,
when a test asks, the stream's ``proxy_read_timeout`` are changed. nginx runs from a temporary
prefix on a free port; the system's nginx is never touched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from .api import ADMIN, LiveAdmin
from .processes import (
    ROOT,
    Service,
    free_port,
    require_program,
    stop_process_group,
    wait_answering,
    wait_until,
)

SITE = ROOT / "docs" / "deploy" / "nginx.conf"
# The same with single sign-on (auth_request to a sign-in service on 127.0.0.1:4180).
SSO_SITE = ROOT / "docs" / "deploy" / "nginx-sso.conf"

MAIN_CONF = """\
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 256; }}
http {{
    log_format ops '$remote_addr "$request" $status $request_time rid=$request_id';
    access_log {tmp}/access.log ops;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/site.conf;
}}
"""


def site_config(upstream_port: int, listen_port: int, stream_read_timeout: str | None,
                site: Path = SITE, sign_in_port: int | None = None) -> str:
    """``site`` (docs/deploy/nginx.conf) with the ports (and the stream read timeout)
    replaced; ``sign_in_port`` is the sign-in service's, for nginx-sso.conf."""
    text = site.read_text()
    changes = [(r"server 127\.0\.0\.1:8080;", f"server 127.0.0.1:{upstream_port};"),
               (r"(?m)^(\s*)listen 80;", rf"\g<1>listen 127.0.0.1:{listen_port};")]
    if sign_in_port is not None:
        changes.append((r"server 127\.0\.0\.1:4180;", f"server 127.0.0.1:{sign_in_port};"))
    if stream_read_timeout is not None:
        changes.append((r"proxy_read_timeout 1h;", f"proxy_read_timeout {stream_read_timeout};"))
    for pattern, replacement in changes:
        text, count = re.subn(pattern, replacement, text)
        assert count == 1, f"{site.name} no longer has exactly one {pattern!r}"
    return text


class NginxServer(Service):
    """nginx on a free port in front of ``upstream_port``, with ``site`` (and, for
    nginx-sso.conf, the sign-in service on ``sign_in_port``)."""

    def __init__(self, upstream_port: int, stream_read_timeout: str | None = None,
                 admin_token: str = ADMIN, site: Path = SITE, sign_in_port: int | None = None):
        # Debian puts nginx in /usr/sbin, which is not on an ordinary user's PATH.
        self.binary = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin") \
            or require_program("nginx")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._tmp = tempfile.TemporaryDirectory(prefix="ops-nginx-")
        self.dir = Path(self._tmp.name)
        self.dir.chmod(0o755)  # nginx's workers run as an unprivileged user when we are root
        (self.dir / "site.conf").write_text(
            site_config(upstream_port, self.port, stream_read_timeout, site, sign_in_port))
        (self.dir / "nginx.conf").write_text(MAIN_CONF.format(tmp=self.dir))
        self.process: subprocess.Popen | None = None
        self.admin = LiveAdmin(self.url, admin_token)

    def start(self) -> NginxServer:
        command = [self.binary, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"),
                   "-e", str(self.dir / "error.log")]
        check = subprocess.run([*command, "-t"], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        wait_answering(f"{self.url}/healthz", self.process, name="nginx", timeout=15,
                       log=self.error_log)
        return self

    def error_log(self) -> str:
        path = self.dir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        try:
            if self.process is not None:
                stop_process_group(self.process, timeout=10)
        finally:
            self._tmp.cleanup()


class CurlStream:
    """``curl -sN`` reading an event stream; records when each event and heartbeat arrived."""

    def __init__(self, url: str, *args: str):
        curl = require_program("curl")
        self.started = time.monotonic()
        self.events: list[tuple[float, str, dict]] = []  # (seconds since start, kind, data)
        self.heartbeats: list[float] = []
        self.process = subprocess.Popen([curl, "-sN", *args, url], stdout=subprocess.PIPE,
                                        start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        kind = "message"
        for raw in self.process.stdout:
            line = raw.decode().rstrip("\r\n")
            now = time.monotonic() - self.started
            if line.startswith(":"):
                self.heartbeats.append(now)
            elif line.startswith("event:"):
                kind = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                self.events.append((now, kind, json.loads(line.partition(":")[2])))
                kind = "message"

    @property
    def kinds(self) -> list[str]:
        return [kind for _, kind, _ in self.events]

    def arrival(self, kind: str, n: int = 1) -> float:
        """When the ``n``-th event of ``kind`` arrived."""
        return [t for t, k, _ in self.events if k == kind][n - 1]

    def wait_for_kind(self, kind: str, timeout: float) -> None:
        wait_until(lambda: kind in self.kinds, timeout=timeout,
                   message=f"a {kind!r} event (got {self.kinds})")

    def wait_exit(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def close(self) -> None:
        stop_process_group(self.process, timeout=5)
        self._reader.join(5)
        self.process.stdout.close()

    def __enter__(self) -> CurlStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
