"""Stopping the real server: SIGTERM mid-task ends tasks and streams cleanly and in time."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from tests.support.api import ADMIN
from tests.support.live import GunicornServer
from tests.support.processes import wait_until
from tests.support.sse import parse_messages

pytestmark = pytest.mark.live



def test_sigterm_fails_running_tasks_with_shutdown_and_closes_streams():
    env = {"SETTINGS_ADMIN_TOKEN": ADMIN, "DEV_LOCAL_LLM": "1", "OPS_DEV_TICK_SECONDS": "60",
           "OPS_HEARTBEAT_SECONDS": "0.5", "OPS_GRACEFUL_TIMEOUT": "10", "OPS_WORKERS": "1"}
    with GunicornServer(env) as server:
        running = server.admin.create("long")["id"]
        queued = server.admin.create("waits")["id"]
        seen = {running: [], queued: []}

        def watch(task_id):
            with server.admin.stream(task_id) as response:
                for message in parse_messages(response.iter_lines(decode_unicode=True)):
                    if "data" in message:
                        seen[task_id].append((message["event"], message["data"]))

        watchers = [threading.Thread(target=watch, args=(t,)) for t in seen]
        for watcher in watchers:
            watcher.start()
        wait_until(lambda: server.admin.stats()["streams_open"] == 2)
        stopped_at = time.monotonic()
        code = server.stop(signal.SIGTERM, timeout=20)
        took = time.monotonic() - stopped_at
        for watcher in watchers:
            watcher.join(20)
        assert code == 0 and took < 10, (code, took, server.log())
        for task_id, events in seen.items():
            kind, data = events[-1]
            assert kind == "failed" and '"reason":"shutdown"' in data, (task_id, events)
        assert [k for k, _ in seen[running]] == ["created", "status", "failed"]
        assert [k for k, _ in seen[queued]] == ["created", "failed"]
        assert "Worker graceful timeout" not in server.log()


def test_sigterm_on_supabase_streams_resume_on_another_server(supabase_env):
    """Two servers share Supabase; SIGTERM one mid-task: its task ends failed (shutdown),
    its streams end cleanly, and a client resumes on the other with Last-Event-ID."""
    env = {**supabase_env, "SETTINGS_ADMIN_TOKEN": ADMIN, "DEV_LOCAL_LLM": "1",
           "OPS_DEV_TICK_SECONDS": "60", "OPS_HEARTBEAT_SECONDS": "0.5",
           "OPS_GRACEFUL_TIMEOUT": "10"}
    with GunicornServer(env) as doomed, GunicornServer(env) as other:
        task_id = doomed.admin.create("long")["id"]
        seen = []
        with doomed.admin.stream(task_id) as response:
            messages = parse_messages(response.iter_lines(decode_unicode=True))
            for message in messages:
                if "data" in message:
                    seen.append((int(message["id"]), message["event"]))
                    if message["event"] == "status":
                        break
            stopped_at = time.monotonic()
            threading.Thread(target=doomed.stop, args=(signal.SIGTERM, 20)).start()
            for message in messages:  # the stream ends cleanly, with or without the end event
                if "data" in message:
                    seen.append((int(message["id"]), message["event"]))
        assert time.monotonic() - stopped_at < 10
        resume = {"Last-Event-ID": str(seen[-1][0])}
        with other.admin.stream(task_id, headers=resume) as response:
            seen += [(int(m["id"]), m["event"])
                     for m in parse_messages(response.iter_lines(decode_unicode=True))
                     if "data" in m]
        assert [kind for _, kind in seen] == ["created", "status", "failed"]
        final = other.admin.task(task_id)
        assert final["status"] == "failed" and final["error"] == "shutdown"
