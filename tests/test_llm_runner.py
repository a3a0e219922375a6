"""The LLM runner against the loopback model server (tests/support/fake_llm.py), on plain
threads."""

from __future__ import annotations

import json
import logging
import math
import time

import pytest

from app.executor.runners.llm import LLMRunner
from tests.runner_contract import FailingRunnerContract, RunnerContract
from tests.support.api import Admin, make_settings
from tests.support.fake_llm import answer_text
from tests.support.processes import free_port, wait_until
from tests.support.runners import Tasks


@pytest.fixture
def make_tasks(make_app, fake_llm):
    """Tasks on an app whose LLM runner asks ``fake_llm``; settings may be overridden."""
    def make(**overrides) -> Tasks:
        app = make_app(make_settings(**{
            "dev_mode": False, "llm_base_url": fake_llm.url, "llm_model": "fake-model",
            "llm_api_key": fake_llm.api_key, "llm_timeout": 5.0, "llm_batch_seconds": 0.2,
            **overrides}))
        return Tasks(Admin(app.test_client()), app)
    return make


@pytest.fixture
def tasks(make_tasks):
    return make_tasks()


def texts(tasks, task_id):
    return [e["data"]["text"] for e in tasks.events(task_id) if e["kind"] == "text"]


def test_the_answer_streams_in_batches_and_done_has_all_of_it(tasks, fake_llm):
    task_id = tasks.create("Summarise the release", body="fake: words=200 delay=0.005")
    task = tasks.wait_finished(task_id)
    assert (task["status"], task["runner"], task["model"]) == ("done", "llm", "fake-model")
    batches = texts(tasks, task_id)
    assert "".join(batches) == answer_text(200)
    assert 3 <= len(batches) <= 20  # ~1.6 s of words at one batch per 0.2 s
    done = tasks.terminal(task_id)["data"]
    assert done["text"] == answer_text(200) and done["text_events"] == len(batches)
    assert (done["finish_reason"], done["usage"]["completion_tokens"]) == ("stop", 200)
    (sent,) = fake_llm.requests
    assert sent["headers"]["Authorization"] == f"Bearer {fake_llm.api_key}"
    assert sent["body"]["stream"] is True and sent["body"]["model"] == "fake-model"
    assert sent["body"]["messages"] == [
        {"role": "user", "content": "Summarise the release\n\nfake: words=200 delay=0.005"}]


def test_batches_are_also_bounded_by_size(make_tasks):
    tasks = make_tasks(llm_batch_seconds=60, llm_batch_chars=1000)
    task_id = tasks.create("Long", body="fake: words=600")
    assert tasks.wait_finished(task_id)["status"] == "done"
    batches = texts(tasks, task_id)
    total = len(answer_text(600))
    assert "".join(batches) == answer_text(600)
    assert all(len(b) >= 1000 for b in batches[:-1])
    assert len(batches) <= math.ceil(total / 1000)


def test_without_an_api_key_no_authorization_is_sent(make_tasks, fake_llm):
    fake_llm.api_key = None
    tasks = make_tasks(llm_api_key=None)
    assert tasks.wait_finished(tasks.create("Hi"))["status"] == "done"
    assert "Authorization" not in fake_llm.requests[0]["headers"]


def test_an_answer_without_done_marker_still_finishes(tasks):
    task_id = tasks.create("Hi", body="fake: words=3 nodone")
    assert tasks.wait_finished(task_id)["status"] == "done"
    assert tasks.terminal(task_id)["data"]["text"] == answer_text(3)


@pytest.mark.parametrize("body, reason", [
    ("fake: status=500", "the model server answered HTTP 500: the fake server was told to fail"),
    ("fake: status=429", "the model server answered HTTP 429: the fake server was told to fail"),
    ("fake: words=9 fault=broken after=2",
     "malformed chunk from the model server: '{\"choices\": [{\"delta\": '"),
    ("fake: words=9 fault=error after=2",
     "the model server reported an error: the model is overloaded"),
    ("fake: words=9 fault=cut after=2",
     "the model server ended the stream before the answer was complete"),
    ("fake: words=9 fault=drop after=2", "the connection to the model server broke"),
])
def test_failures_of_the_model_server_fail_the_task_clearly(tasks, body, reason):
    task_id = tasks.create("Hi", body=body)
    assert tasks.wait_finished(task_id)["error"] == reason
    if "after=2" in body:  # what came before the fault was passed on
        assert "".join(texts(tasks, task_id)) == answer_text(2)


@pytest.mark.parametrize("body", ["fake: words=5 fault=stall after=2", "fake: fault=hang"])
def test_a_silent_model_server_times_out(make_tasks, body):
    tasks = make_tasks(llm_timeout=0.5)
    task_id = tasks.create("Hi", body=body)
    assert tasks.wait_finished(task_id)["error"] == (
        "the model server sent nothing for 0.5 s (OPS_LLM_TIMEOUT_SECONDS)")


def test_an_unreachable_model_server_fails_the_task(make_tasks):
    port = free_port()  # nothing listens there
    tasks = make_tasks(llm_base_url=f"http://127.0.0.1:{port}/v1")
    task = tasks.wait_finished(tasks.create("Hi"))
    assert task["error"] == (f"could not reach the model server at 127.0.0.1:{port}: "
                             "Connection refused")


def test_the_api_key_never_appears_in_events_or_logs(make_tasks, fake_llm, caplog):
    caplog.set_level(logging.DEBUG)
    wrong_key = "sk-wrong-key-that-the-server-echoes"
    tasks = make_tasks(llm_api_key=wrong_key)
    task_id = tasks.create("Hi")
    task = tasks.wait_finished(task_id)
    assert task["error"] == ("the model server answered HTTP 401: Incorrect API key provided: "
                             "[redacted]")
    assert fake_llm.requests[0]["headers"]["Authorization"] == f"Bearer {wrong_key}"
    assert wrong_key not in json.dumps(tasks.events(task_id))
    assert wrong_key not in json.dumps(tasks.get(task_id))
    assert "401" in caplog.text and wrong_key not in caplog.text


@pytest.mark.parametrize("echo", [
    lambda key: f"{key[:8]}{'*' * 20}{key[-4:]}",  # OpenAI's way: the first 8, the last 4
    lambda key: f"{key[:3]}...{key[-9:]}",
    lambda key: key[5:17],
    lambda key: f"'{key[2:12]}' and '{key[-10:]}'",
], ids=["head-and-tail", "long-tail", "middle", "two-pieces"])
def test_no_piece_of_the_api_key_appears_in_events_errors_or_logs(make_tasks, fake_llm, caplog,
                                                                   echo):
    caplog.set_level(logging.DEBUG)
    wrong_key = "sk-live-0a1b2c3d4e5f6g7h8i9j"
    fake_llm.echo = echo
    tasks = make_tasks(llm_api_key=wrong_key)
    task_id = tasks.create("Hi")
    task = tasks.wait_finished(task_id)
    assert task["error"].startswith("the model server answered HTTP 401: Incorrect API key")
    assert "[redacted]" in task["error"]
    seen = json.dumps(tasks.events(task_id)) + json.dumps(task) + caplog.text
    assert "401" in caplog.text
    pieces = {wrong_key[i:i + 8] for i in range(len(wrong_key) - 7)}
    assert [p for p in pieces if p in seen] == []


def test_cancel_closes_the_http_stream_at_once(tasks, fake_llm):
    task_id = tasks.create("Hi", body="fake: words=1000 delay=0.05")
    wait_until(lambda: texts(tasks, task_id), message="the first text event")
    canceled_at = time.monotonic()
    tasks.admin.post(f"/ops/tasks/{task_id}/cancel")
    assert tasks.wait_finished(task_id)["status"] == "canceled"
    (gone_at,) = wait_until(lambda: fake_llm.disconnects, timeout=5,
                            message="the model server to see the client go")
    assert gone_at - canceled_at < 0.5
    assert len("".join(texts(tasks, task_id))) < len(answer_text(1000)) / 2


class TestLLMRunnerContract(RunnerContract, FailingRunnerContract):
    """The runner contract (tests/runner_contract.py) against the loopback model server."""

    @pytest.fixture
    def runner(self, fake_llm):
        return LLMRunner(fake_llm.url, "fake-model", fake_llm.api_key, timeout=5.0,
                         batch_seconds=0.2, batch_chars=make_settings().llm_batch_chars)

    @pytest.fixture
    def jobs(self):
        return {"quick": ("answer", "fake: words=5", {}),
                "long": ("answer", "fake: words=5 fault=stall after=1", {}),
                "failing": ("answer", "fake: status=500", {})}
