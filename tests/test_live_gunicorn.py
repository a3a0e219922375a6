"""The real server: gunicorn with the gevent worker, driven by curl -N and requests."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app.auth.stream_tokens import StreamTokens
from tests.support.api import ADMIN, HEADERS, SECRET
from tests.support.live import GunicornServer
from tests.support.processes import ROOT, require_program, wait_until
from tests.support.sse import DEV_KINDS, events, parse_messages

pytestmark = pytest.mark.live

ENV = {"SETTINGS_ADMIN_TOKEN": ADMIN, "DEV_LOCAL_LLM": "1", "OPS_STREAM_SECRET": SECRET,
       "OPS_DEV_TICK_SECONDS": "0.1", "OPS_HEARTBEAT_SECONDS": "0.3", "OPS_QUEUE_SIZE": "200",
       # gevent reports any greenlet that holds the event loop longer than this.
       "GEVENT_MONITOR_THREAD_ENABLE": "true", "GEVENT_MAX_BLOCKING_TIME": "0.2"}


@pytest.fixture(scope="module")
def server():
    with GunicornServer(ENV) as server:
        yield server


def read_stream(url, headers=None, stop_after=None, timeout=30):
    """Read an SSE response; return its events (stopping after ``stop_after`` of them)."""
    got = []
    with requests.get(url, headers=headers or {}, stream=True, timeout=timeout) as response:
        assert response.status_code == 200, response.text
        lines = response.iter_lines(decode_unicode=True)
        for message in parse_messages(lines):
            if "data" in message:
                got.append({"id": int(message["id"]), "kind": message["event"]})
                if stop_after is not None and len(got) == stop_after:
                    break
    return got


def test_readme_quick_start_verbatim():
    """The README's quick start, run by bash against a fresh server (only the port differs)."""
    require_program("curl")
    readme = (ROOT / "README.md").read_text()
    script = re.search(r"## Quick start.*?```bash\n(.*?)```", readme, re.S).group(1)
    with GunicornServer({"SETTINGS_ADMIN_TOKEN": "adm", "DEV_LOCAL_LLM": "1",
                         "OPS_DEV_TICK_SECONDS": "0.1"}) as fresh:
        result = subprocess.run(["bash", "-c", script.replace(":8080", f":{fresh.port}")],
                                capture_output=True, text=True, timeout=60, env={
                                    "PATH": "/usr/bin:/bin:/usr/local/bin"})
    assert result.returncode == 0, result.stderr
    first_line = result.stdout.splitlines()[0]
    assert '"id":1' in first_line.replace(" ", "") and '"status":"queued"' in first_line
    assert [e["kind"] for e in events(result.stdout[len(first_line):])] == DEV_KINDS


def test_curl_streams_four_ticks_then_done_and_closes(server):
    curl = require_program("curl")
    task_id = server.admin.create()["id"]
    result = subprocess.run([curl, "-sN", "--max-time", "30",
                             f"{server.url}/ops/tasks/{task_id}/stream?admin_token={ADMIN}"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0  # the server closed the response; curl did not time out
    got = events(result.stdout)
    assert [e["kind"] for e in got] == DEV_KINDS
    assert [e["data"]["data"]["n"] for e in got if e["kind"] == "tick"] == [1, 2, 3, 4]


def test_stream_token_flow_as_the_seed_javascript_does_it(server):
    task_id = server.admin.create()["id"]
    response = requests.post(f"{server.url}/ops/stream_tokens",
                             headers={"Content-Type": "application/json", "X-Admin-Token": ADMIN},
                             data=f'{{"task_id": {task_id}}}', timeout=10)
    token = response.json()["token"]
    got = read_stream(f"{server.url}/ops/tasks/{task_id}/stream?token={token}")
    assert [e["kind"] for e in got] == DEV_KINDS


def test_bad_stream_tokens(server):
    task_id, other = server.admin.create()["id"], server.admin.create()["id"]
    mint = StreamTokens([SECRET], ttl=300)
    other_token, _ = mint.mint(other)
    expired, _ = StreamTokens([SECRET], ttl=60, clock=lambda: time.time() - 3600).mint(task_id)
    good, _ = mint.mint(task_id)
    wrong_key, _ = StreamTokens(["another-secret-0123456789"], ttl=300).mint(task_id)
    cases = {other_token: 403, expired: 401, good[:-3] + "xyz": 401, wrong_key: 401, "x.y": 401,
             good[:-1] + "\u00e9": 401}  # sent as %C3%A9: a non-ASCII signature was a 500
    for token, status in cases.items():
        response = requests.get(f"{server.url}/ops/tasks/{task_id}/stream",
                                params={"token": token}, timeout=10)
        assert response.status_code == status, token
        assert response.headers["Content-Type"] == "application/json"


def test_last_event_id_resume_has_no_gap_and_no_duplicate(server):
    task_id = server.admin.create()["id"]
    url = f"{server.url}/ops/tasks/{task_id}/stream"
    first = read_stream(url, HEADERS, stop_after=3)
    rest = read_stream(url, {**HEADERS, "Last-Event-ID": str(first[-1]["id"])})
    whole = read_stream(url, HEADERS)
    assert first + rest == whole
    assert [e["kind"] for e in whole] == DEV_KINDS


def test_disconnected_client_leaves_nothing_behind(server):
    slow = GunicornServer({**ENV, "OPS_DEV_TICK_SECONDS": "30", "OPS_HEARTBEAT_SECONDS": "0.1"})
    with slow:
        task_id = slow.admin.create()["id"]
        with slow.admin.stream(task_id, timeout=10) as response:
            next(response.iter_lines())
            wait_until(lambda: slow.admin.stats()["streams_open"] == 1)
        # The server notices at its next heartbeat write and closes the generator.
        wait_until(lambda: slow.admin.stats()["streams_open"] == 0, timeout=10)
        slow.admin.cancel(task_id)
        wait_until(lambda: slow.admin.stats()["running"] == 0)


def test_fifty_concurrent_streams_are_complete(server):
    task_ids = [server.admin.create(f"t{n}")["id"] for n in range(50)]
    start = threading.Barrier(50)

    def watch(task_id):
        start.wait()
        return read_stream(f"{server.url}/ops/tasks/{task_id}/stream", HEADERS, timeout=60)

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(watch, task_ids))
    for got in results:
        assert [e["kind"] for e in got] == DEV_KINDS
        assert [e["id"] for e in got] == sorted(e["id"] for e in got)
    assert "Using worker: gevent" in server.log()
    assert "appears to be blocked" not in server.log()


@pytest.mark.parametrize("env, workers, message", [
    ({}, 1, "SETTINGS_ADMIN_TOKEN is not set"),
    ({"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_STREAM_SECRET": "short"}, 1,
     "OPS_STREAM_SECRET must be"),
    ({"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_WORKERS": "lots"}, 1, "OPS_WORKERS must be"),
    ({"SETTINGS_ADMIN_TOKEN": ADMIN}, 2, "must run one worker"),
])
def test_refuses_to_start_with_a_one_line_error(env, workers, message):
    server = GunicornServer(env, workers=workers)
    try:
        with pytest.raises(AssertionError, match="gunicorn exited with 1"):
            server.start()
        errors = [line for line in server.log().splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and message in errors[0]
        assert ADMIN not in server.log()
    finally:
        server.close()
