"""Stream slots: one stream token cannot take a task's or the process's every slot.

Streams are opened unbuffered through the test client and held; ``close()`` is what the
server does when a client goes away.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.support.api import ADMIN


@pytest.fixture
def opened():
    """Streams to close at the end of the test, whatever happened."""
    with contextlib.ExitStack() as stack:
        def hold(response):
            stack.callback(response.close)
            return response
        yield hold


def open_stream(admin, task_id, *, token=None, query_admin=False):
    """A stream of ``task_id`` by stream token, by ``?admin_token=`` or by admin header."""
    if token is not None:
        return admin.client.get(f"/ops/tasks/{task_id}/stream?token={token}", buffered=False)
    if query_admin:
        return admin.client.get(f"/ops/tasks/{task_id}/stream?admin_token={ADMIN}",
                                buffered=False)
    return admin.get(f"/ops/tasks/{task_id}/stream", buffered=False)


def streams_of(admin):
    return admin.client.application.extensions["services"].streams


def test_one_token_takes_at_most_its_tasks_share_by_default(admin_for, opened):
    """The reported attack, with the defaults but for OPS_MAX_STREAMS: many streams of one
    task with one token took every slot of the process."""
    admin = admin_for(dev_tick_seconds=30, max_streams=400)
    task, other = admin.create("flooded"), admin.create("other")
    token = task["stream_token"]
    statuses = [opened(open_stream(admin, task["id"], token=token)).status_code
                for _ in range(101)]
    assert statuses == [200] * 100 + [429]
    assert opened(open_stream(admin, other["id"], token=other["stream_token"])).status_code == 200
    assert opened(open_stream(admin, other["id"])).status_code == 200


def test_a_tasks_cap_is_429_with_retry_after_and_leaves_others_open(admin_for, opened):
    admin = admin_for(dev_tick_seconds=30, max_streams=50, max_streams_per_task=2)
    task, other = admin.create("flooded"), admin.create("other")
    first = [opened(open_stream(admin, task["id"], token=task["stream_token"]))
             for _ in range(2)]
    assert [r.status_code for r in first] == [200, 200]
    refused = open_stream(admin, task["id"], token=task["stream_token"])
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "5"
    assert f"task {task['id']} already has 2 streams" in refused.get_json()["error"]
    assert opened(open_stream(admin, other["id"], token=other["stream_token"])).status_code == 200
    # The admin credential is not held to a task's cap, by header or (dev mode) query.
    assert opened(open_stream(admin, task["id"])).status_code == 200
    assert opened(open_stream(admin, task["id"], query_admin=True)).status_code == 200
    assert streams_of(admin).task_streams(task["id"]) == 2 and streams_of(admin).open == 5


def test_admin_streams_open_while_token_streams_fill_the_process(admin_for, opened):
    """OPS_MAX_STREAMS=20: token streams get 18 slots, the last 2 are the admin's."""
    admin = admin_for(dev_tick_seconds=30, max_streams=20)
    tasks = [admin.create(f"t{n}") for n in range(5)]
    statuses = [opened(open_stream(admin, t["id"], token=t["stream_token"])).status_code
                for t in tasks for _ in range(4)]
    assert statuses == [200] * 18 + [503] * 2
    refused = open_stream(admin, tasks[0]["id"], token=tasks[0]["stream_token"])
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    assert "kept for the admin token" in refused.get_json()["error"]
    assert opened(open_stream(admin, tasks[0]["id"])).status_code == 200
    assert opened(open_stream(admin, tasks[1]["id"], query_admin=True)).status_code == 200
    full = open_stream(admin, tasks[2]["id"])  # OPS_MAX_STREAMS holds for everyone
    assert full.status_code == 503 and full.headers["Retry-After"] == "5"


def test_counts_go_back_down_when_streams_close(admin_for):
    admin = admin_for(dev_tick_seconds=30, max_streams=20, max_streams_per_task=2)
    task = admin.create()
    token = task["stream_token"]
    for _ in range(3):  # each round fills the task's share, then frees it
        held = [open_stream(admin, task["id"], token=token) for _ in range(2)]
        held.append(open_stream(admin, task["id"]))
        assert [r.status_code for r in held] == [200, 200, 200]
        assert open_stream(admin, task["id"], token=token).status_code == 429
        assert (streams_of(admin).open, streams_of(admin).task_streams(task["id"])) == (3, 2)
        for response in held:
            response.close()
        assert (streams_of(admin).open, streams_of(admin).task_streams(task["id"])) == (0, 0)
    assert admin.get("/ops/stats").get_json()["streams_open"] == 0
