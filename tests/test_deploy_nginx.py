"""The shipped nginx config in front of real gunicorn, read with real ``curl -N``."""

from __future__ import annotations

import contextlib
import json
import subprocess

import pytest

from tests.support.api import ADMIN
from tests.support.live import GunicornServer
from tests.support.nginx import CurlStream, NginxServer
from tests.support.processes import require_program, wait_until
from tests.support.sse import DEV_KINDS

pytestmark = pytest.mark.live

ENV = {"SETTINGS_ADMIN_TOKEN": ADMIN, "DEV_LOCAL_LLM": "1", "OPS_SSE_RETRY_MS": "100"}


@contextlib.contextmanager
def stack(env: dict[str, str], stream_read_timeout: str | None = None):
    """gunicorn (with ``env``) behind nginx; yields (gunicorn, nginx)."""
    with GunicornServer({**ENV, **env}) as gunicorn:
        with NginxServer(gunicorn.port, stream_read_timeout) as nginx:
            yield gunicorn, nginx


def stream_url(base_url: str, task_id: int) -> str:
    return f"{base_url}/ops/tasks/{task_id}/stream"


@pytest.mark.slow
def test_events_arrive_one_by_one_as_they_are_produced(tmp_path):
    # One executor worker: the second task waits for the first, so its stream is open
    # before its first tick is produced whatever the machine's load.
    with stack({"OPS_DEV_TICK_SECONDS": "0.3", "OPS_WORKERS": "1"}) as (_, nginx):
        nginx.admin.create("first")
        task_id = nginx.admin.create("second")["id"]
        headers_file = tmp_path / "headers"
        with CurlStream(stream_url(nginx.url, task_id), "-H", f"X-Admin-Token: {ADMIN}",
                        "-H", "Accept-Encoding: gzip", "-D", str(headers_file)) as curl:
            assert curl.wait_exit(timeout=15) == 0
        headers = headers_file.read_text().lower()

    assert curl.kinds == DEV_KINDS
    assert "content-type: text/event-stream" in headers
    assert "content-encoding" not in headers  # never gzipped, even when asked
    assert "x-request-id:" in headers
    ticks = [curl.arrival("tick", n) for n in range(1, 5)]
    gaps = [later - earlier for earlier, later in zip(ticks, ticks[1:])]
    # Produced 0.3 s apart; a buffering proxy would hand them over together, at the end.
    assert all(gap > 0.15 for gap in gaps), f"ticks arrived at {ticks}"
    assert curl.arrival("done") - ticks[0] > 0.6, f"first tick {ticks[0]}, done {curl.events}"


@pytest.mark.slow
def test_heartbeats_keep_an_idle_stream_open_past_the_read_timeout():
    # nginx cuts a stream silent for 1 s; ticks come 2 s apart, heartbeats every 0.3 s.
    env = {"OPS_DEV_TICK_SECONDS": "2", "OPS_HEARTBEAT_SECONDS": "0.3"}
    with stack(env, stream_read_timeout="1s") as (_, nginx):
        task_id = nginx.admin.create()["id"]
        with CurlStream(stream_url(nginx.url, task_id), "-H", f"X-Admin-Token: {ADMIN}") as curl:
            curl.wait_for_kind("tick", timeout=10)
            assert curl.process.poll() is None, "the stream was closed"
    silence = curl.arrival("tick") - curl.arrival("status")
    assert silence > 1.5, f"no event for {silence:.2f}s: longer than the read timeout"
    beats = [t for t in curl.heartbeats if curl.arrival("status") < t < curl.arrival("tick")]
    assert len(beats) >= 3


@pytest.mark.slow
def test_without_heartbeats_nginx_cuts_an_idle_stream():
    """The control for the test above: its read timeout really is in force."""
    # A short graceful timeout: the stream nginx dropped waits for its next write to end.
    env = {"OPS_DEV_TICK_SECONDS": "3", "OPS_HEARTBEAT_SECONDS": "30",
           "OPS_GRACEFUL_TIMEOUT": "2"}
    with stack(env, stream_read_timeout="1s") as (_, nginx):
        task_id = nginx.admin.create()["id"]
        with CurlStream(stream_url(nginx.url, task_id), "-H", f"X-Admin-Token: {ADMIN}") as curl:
            curl.wait_exit(timeout=2.5)  # cut after 1 s of silence, before the first tick
    assert curl.kinds == ["created", "status"]


def test_client_address_and_request_id_reach_the_app_log():
    env = {"OPS_LOG_JSON": "1", "OPS_ACCESS_LOG": "-"}
    with stack(env) as (gunicorn, nginx):
        # The client is 127.0.0.2 and claims to be 203.0.113.9; nginx connects from 127.0.0.1.
        spoof = ("--interface", "127.0.0.2", "-H", "X-Forwarded-For: 203.0.113.9")
        via_nginx = _curl_request_id(f"{nginx.url}/ops/tasks", *spoof)
        direct = _curl_request_id(f"{gunicorn.url}/ops/tasks", *spoof)
        wait_until(lambda: direct in gunicorn.log(), timeout=5, message="the request lines")
        lines = [json.loads(line) for line in gunicorn.log().splitlines()
                 if line.startswith("{")]
        nginx_log = (nginx.dir / "access.log").read_text()

    requests_by_id = {line["request_id"]: line for line in lines
                      if line["logger"] == "app.requests"}
    # Through nginx: the address nginx saw, not the one the client claimed.
    assert requests_by_id[via_nginx]["remote_addr"] == "127.0.0.2"
    assert f"rid={via_nginx}" in nginx_log  # nginx's $request_id is the app's request id
    # Straight to gunicorn from an address that is no trusted proxy: the header is ignored.
    assert requests_by_id[direct]["remote_addr"] == "127.0.0.2"
    access = [line["message"] for line in lines if line["logger"] == "gunicorn.access"]
    assert any(m.startswith("127.0.0.2 ") and via_nginx in m for m in access), access
    assert "203.0.113.9" not in json.dumps(requests_by_id)


def _curl_request_id(url: str, *args: str) -> str:
    """GET ``url`` with curl; the X-Request-ID it was answered with."""
    out = subprocess.run([require_program("curl"), "-s", "-o", "/dev/null", "-D", "-", "-H",
                          f"X-Admin-Token: {ADMIN}", *args, url],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    assert out.startswith("HTTP/1.1 200"), out
    return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                if line.lower().startswith("x-request-id:"))
