"""Both runners under gunicorn's gevent worker, watched through the real SSE stream."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.support.api import ADMIN, SECRET
from tests.support.fake_llm import answer_text
from tests.support.live import GunicornServer
from tests.support.processes import wait_until
from tests.support.runners import (
    RECIPES,
    kill_leftovers,
    log_lines,
    pids_in,
    process_alive,
    recipe_user_env,
)
from tests.support.sse import parse_messages

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def fake_model():
    from tests.support.fake_llm import FakeLLM

    with FakeLLM(api_key="sk-gunicorn-0123456789abcdef") as server:
        yield server


@pytest.fixture(scope="module")
def server(fake_model):
    env = {"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_STREAM_SECRET": SECRET,
           "OPS_RECIPES": str(RECIPES), "OPS_RECIPE_KILL_GRACE_SECONDS": "0.5",
           "OPS_LLM_BASE_URL": fake_model.url, "OPS_LLM_MODEL": "fake-model",
           "OPS_LLM_API_KEY": fake_model.api_key, "OPS_LLM_BATCH_SECONDS": "0.2",
           "OPS_HEARTBEAT_SECONDS": "1", "OPS_LOG_LEVEL": "DEBUG", **recipe_user_env()}
    with GunicornServer(env) as running:
        yield running


class Stream:
    """A task's SSE stream, read event by event as the server sends it."""

    def __init__(self, server, task_id: int):
        self.started = time.monotonic()
        self.response = server.admin.stream(task_id, timeout=20)
        assert self.response.status_code == 200
        self._messages = parse_messages(self.response.iter_lines(decode_unicode=True))
        self.seen: list[dict] = []

    def until(self, predicate) -> list[dict]:
        """Read events until one satisfies ``predicate``; all events read so far."""
        for message in self._messages:
            if "data" in message:
                event = json.loads(message["data"])
                self.seen.append({"kind": event["kind"], "data": event["data"]})
                if predicate(self.seen[-1]):
                    return self.seen
        raise AssertionError(f"the stream ended first: {self.seen}")

    def lines(self) -> list[str]:
        return log_lines(self.seen)

    def close(self) -> None:
        self.response.close()


def terminal(event) -> bool:
    return event["kind"] in {"done", "failed", "canceled"}


@pytest.fixture
def open_tmp_path():
    """A temporary directory the recipe user can look into (pytest's tmp_path is private)."""
    with tempfile.TemporaryDirectory() as path:
        os.chmod(path, 0o755)
        yield Path(path)


def test_output_streams_while_the_child_blocks_and_the_worker_stays_free(server, open_tmp_path):
    gate = open_tmp_path / "open"
    task_id = server.admin.create("Run it", recipe="gate", params={"path": str(gate)})["id"]
    stream = Stream(server, task_id)
    try:
        stream.until(lambda e: e["kind"] == "log")
        assert stream.lines() == ["waiting"]
        # The child blocks on the gate until the test opens it: a worker stuck reading its
        # pipe would answer nothing (the request times out) until then.
        assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
        assert server.admin.task(task_id)["status"] == "running"
        gate.touch()
        assert stream.until(terminal)[-1]["kind"] == "done"
        assert stream.lines() == ["waiting", "through"]
    finally:
        stream.close()


def test_cancel_kills_the_whole_group_under_gevent(server):
    task_id = server.admin.create("Run it", recipe="stubborn")["id"]
    stream = Stream(server, task_id)
    pids: list[int] = []
    try:
        stream.until(lambda e: len(pids_in(stream.lines())) == 2)
        pids = pids_in(stream.lines())
        assert all(process_alive(pid) for pid in pids)
        assert server.admin.cancel(task_id).status_code == 202
        end = stream.until(terminal)[-1]
        assert end["kind"] == "canceled" and end["data"]["stopped_with"] == "SIGKILL"
        assert not any(process_alive(pid) for pid in pids)
    finally:
        stream.close()
        kill_leftovers(pids)


def test_a_flood_is_kept_whole_and_the_worker_keeps_answering(server):
    task_id = server.admin.create("Run it", recipe="flood", params={"count": "20000"})["id"]
    healthy = requests.get(f"{server.url}/healthz", timeout=5)
    assert healthy.status_code == 200
    stream = Stream(server, task_id)
    try:
        end = stream.until(terminal)[-1]
        assert end["kind"] == "done"
        assert end["data"]["log"]["lines"] == 20000
        assert stream.lines() == [f"line {n}" for n in range(20000)]
        assert sum(e["kind"] == "log" for e in stream.seen) < 200  # batched, not one a line
    finally:
        stream.close()


def test_the_child_environment_has_none_of_the_servers_secrets(server, fake_model):
    stream = Stream(server, server.admin.create("Run it", recipe="env")["id"])
    try:
        assert stream.until(terminal)[-1]["kind"] == "done"
    finally:
        stream.close()
    env = json.loads(stream.lines()[0])
    assert not {"SETTINGS_ADMIN_TOKEN", "OPS_STREAM_SECRET", "OPS_LLM_API_KEY"} & set(env)
    assert not any(secret in stream.lines()[0] for secret in (ADMIN, SECRET, fake_model.api_key))


def test_the_llm_answer_streams_in_batches(server, fake_model):
    stream = Stream(server, server.admin.create("Run it", body="fake: words=150 delay=0.005")["id"])
    try:
        events = stream.until(terminal)
    finally:
        stream.close()
    texts = [e["data"]["text"] for e in events if e["kind"] == "text"]
    assert "".join(texts) == answer_text(150) == events[-1]["data"]["text"]
    assert 2 <= len(texts) <= 20


def test_cancel_closes_the_model_stream_at_once_under_gevent(server, fake_model):
    words, delay = 1000, 0.05
    task_id = server.admin.create("Run it", body=f"fake: words={words} delay={delay}")["id"]
    stream = Stream(server, task_id)
    try:
        stream.until(lambda e: e["kind"] == "text")
        before = len(fake_model.disconnects)
        canceled_at = time.monotonic()
        server.admin.cancel(task_id)
        assert stream.until(terminal)[-1]["kind"] == "canceled"
        # The answer still had most of its 50 s to go: a runner that read on to its end (or
        # until a timeout) would be seen far later than a tenth of that, however busy the
        # machine.
        left = words * delay - (canceled_at - stream.started)
        wait_until(lambda: len(fake_model.disconnects) > before, timeout=left / 10,
                   message="the model server to see the client go")
        assert fake_model.disconnects[before] - canceled_at < left / 10
    finally:
        stream.close()


def test_the_api_key_stays_out_of_events_and_the_server_log(server, fake_model, monkeypatch):
    key = fake_model.api_key
    # The model server now wants another key and echoes the one it got in its 401.
    monkeypatch.setattr(fake_model, "api_key", "sk-another-key")
    stream = Stream(server, server.admin.create("Run it", body="Hi")["id"])
    try:
        end = stream.until(terminal)[-1]
    finally:
        stream.close()
    assert end["data"]["reason"] == ("the model server answered HTTP 401: "
                                     "Incorrect API key provided: [redacted]")
    assert fake_model.requests[-1]["headers"]["Authorization"] == f"Bearer {key}"
    assert key not in json.dumps(stream.seen)
    assert "the model server answered HTTP 401" in server.log()
    assert key not in server.log()
