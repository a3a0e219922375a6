"""Faults with the in-process store: a client that stops reading, a worker killed mid-task.

(The Supabase store's faults, where tasks outlive their process, are in test_supabase_live.py.)
"""

from __future__ import annotations

import json
import os
import signal
import socket

import pytest
import requests

from tests.support.api import ADMIN
from tests.support.live import GunicornServer
from tests.support.processes import wait_until
from tests.support.runners import RECIPES, recipe_user_env
from tests.support.sse import parse_messages

pytestmark = pytest.mark.live
FLOOD = 300_000  # lines (batched): far more than a frozen client's socket buffers hold


def read_events(response) -> list[dict]:
    return [json.loads(m["data"]) for m in parse_messages(response.iter_lines(decode_unicode=True))
            if "data" in m]


def frozen_client(server, task_id: int) -> socket.socket:
    """Ask for the stream, then never read: the kernel buffers fill, the server's write blocks."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET /ops/tasks/{task_id}/stream HTTP/1.1\r\nHost: x\r\n"
                 f"X-Admin-Token: {ADMIN}\r\n\r\n".encode())
    return sock


def test_a_client_that_stops_reading_is_dropped_and_loses_nothing():
    env = {"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_RECIPES": str(RECIPES),
           "OPS_STREAM_SEND_TIMEOUT": "1", "OPS_HEARTBEAT_SECONDS": "0.5", **recipe_user_env()}
    with GunicornServer(env) as server:
        task_id = server.admin.create("flood", recipe="flood",
                                      params={"count": str(FLOOD)})["id"]
        frozen = frozen_client(server, task_id)
        try:
            # A reader that keeps up gets everything while the frozen one stalls.
            with server.admin.stream(task_id, timeout=60) as live:
                whole = read_events(live)
            assert whole[-1]["kind"] == "done"
            assert sum(len(e["data"]["lines"]) for e in whole if e["kind"] == "log") == FLOOD
            # The server gives up on the frozen client after the send timeout.
            wait_until(lambda: server.admin.stats()["streams_open"] == 0, timeout=30,
                       message="the frozen stream to be dropped")
            # What that client sees when it reads again: the start of the stream (whatever
            # the kernel buffered before the drop), never the end.
            frozen.settimeout(10)
            received = b""
            while len(received) < 256 * 1024 and (chunk := frozen.recv(65536)):
                received += chunk
        finally:
            frozen.close()
        body = received.split(b"\r\n\r\n", 1)[1].decode(errors="replace")
        messages = list(parse_messages(body.splitlines()))[:-1]  # the last may be cut short
        got = [json.loads(m["data"]) for m in messages if "data" in m]
        assert got and got[-1]["kind"] != "done"
        # ...and resuming from its last event id completes the sequence exactly once.
        with server.admin.stream(task_id, timeout=60,
                                 headers={"Last-Event-ID": str(got[-1]["id"])}) as resumed:
            rest = read_events(resumed)
        assert [e["id"] for e in got + rest] == [e["id"] for e in whole]
        assert "the client stopped reading" in server.log()
        assert "Traceback" not in server.log()


def test_a_killed_worker_is_replaced_and_says_what_was_lost():
    env = {"SETTINGS_ADMIN_TOKEN": ADMIN, "DEV_LOCAL_LLM": "1", "OPS_DEV_TICK_SECONDS": "30",
           "OPS_HEARTBEAT_SECONDS": "0.5"}
    with GunicornServer(env) as server:
        task_id = server.admin.create("x")["id"]
        [worker] = server.worker_pids()
        with server.admin.stream(task_id) as stream:
            lines = stream.iter_lines(decode_unicode=True)
            next(line for line in lines if line.startswith("event: status"))
            os.kill(worker, signal.SIGKILL)
            with pytest.raises(requests.exceptions.ChunkedEncodingError):
                for _ in lines:  # the connection breaks: the stream does not end cleanly
                    pass
        new_workers = wait_until(lambda: [p for p in server.worker_pids() if p != worker])
        assert new_workers
        # The in-process store died with its worker: the task is gone, and says so (404),
        # rather than pretending to run. The Supabase store keeps it (test_supabase_live.py).
        wait_until(lambda: requests.get(f"{server.url}/healthz", timeout=5).ok)
        gone = server.admin.get(f"/ops/tasks/{task_id}")
        assert gone.status_code == 404
