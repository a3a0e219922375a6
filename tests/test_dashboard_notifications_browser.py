"""Where a task's notifications went, in the task's details, in headless Chromium.

A gunicorn in dev mode posts each ending to a local receiver that refuses the first request
(500) and takes the next: the details show the delivery as delivered after 2 attempts. The
wording of the other states (retrying, given up, a connection error) comes from answers a
Playwright route stands in for.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.support.api import ADMIN, live_env
from tests.support.browser import DESKTOP
from tests.support.live import GunicornServer
from tests.support.processes import wait_until
from tests.support.receiver import Receiver

pytestmark = pytest.mark.live

NOTIFY_SECRET = "notify-secret-0123456789abcdef"
PHONE = {"width": 375, "height": 640}
DELIVERIES = "#notification-list .delivery"


def dev_env(**env: str) -> dict[str, str]:
    return live_env(DEV_LOCAL_LLM="1", OPS_DEV_TICK_SECONDS="0.4", **env)


@pytest.fixture
def notifying():
    """A server whose notifications go to a receiver that answers 500 once, then 200."""
    with Receiver(answers=[500]) as receiver, GunicornServer(dev_env(
            OPS_NOTIFY_URLS=receiver.url + "/hook", OPS_NOTIFY_SECRET=NOTIFY_SECRET)) as server:
        server.receiver = receiver
        yield server


@pytest.fixture(scope="module")
def quiet_server():
    """A server without notifications (its list is stood in for by a route)."""
    with GunicornServer(dev_env()) as server:
        yield server


def shown(tab) -> list[dict]:
    """The deliveries as shown: event, status text, URL and last error of each."""
    return tab.page.eval_on_selector_all(DELIVERIES, """items => items.map(item => ({
        status: item.dataset.status,
        event: item.querySelector('.delivery-event').textContent,
        text: item.querySelector('.delivery-status').textContent,
        url: item.querySelector('.delivery-url').textContent,
        error: item.querySelector('.delivery-error')?.textContent ?? null}))""")


def wait_for_status_text(tab, text: str) -> None:
    tab.page.wait_for_function("text => [...document.querySelectorAll("
                               "'#notification-list .delivery-status')]"
                               ".some(node => node.textContent === text)", arg=text)


def finished_task(server, title: str) -> int:
    task_id = server.admin.create(title)["id"]
    wait_until(lambda: server.admin.task(task_id)["status"] == "done",
               message=f"task {task_id} to finish")
    return task_id


def test_the_details_show_a_delivery_that_succeeded_on_the_second_attempt(notifying,
                                                                         open_dashboard):
    tab = open_dashboard(notifying, token=ADMIN)
    task_id = tab.create("Deploy api")  # the view is open before the task ends
    tab.wait_for_event("done")
    tab.page.wait_for_selector("#notifications", state="visible")
    wait_for_status_text(tab, "delivered after 2 attempts")

    [delivery] = shown(tab)
    assert delivery == {"status": "delivered", "event": "task.ended",
                        "text": "delivered after 2 attempts",
                        "url": notifying.receiver.url + "/hook", "error": None}
    assert tab.text("#notifications-heading") == "Notifications"
    assert [r.status for r in notifying.receiver.answered(2)] == [500, 200]
    calls = tab.api_calls(f"/ops/tasks/{task_id}/notifications")
    assert len(calls) >= 2  # read at the start, and again once it ended
    assert all(c.headers.get("x-admin-token") == ADMIN for c in calls)

    poor = [r for r in tab.contrast_ratios() if r["ratio"] < 4.5]
    assert poor == [], poor
    tab.page.set_viewport_size(PHONE)
    assert not tab.overflows_sideways()
    assert tab.page.is_visible("#notifications")
    tab.page.set_viewport_size(DESKTOP)
    tab.assert_clean(ADMIN)


def test_each_state_in_words_and_read_again_while_pending(quiet_server, open_dashboard):
    task_id = finished_task(quiet_server, "Roll back web")
    next_at = (datetime.now(timezone.utc) + timedelta(minutes=3)).isoformat()
    retrying = {"id": 1, "url": "https://hooks.example.com/ops?key=[redacted]",
                "event": "task.ended", "format": "json", "status": "pending", "attempts": 2,
                "last_status": 500, "last_error": "HTTP 500", "next_attempt_at": next_at,
                "delivered_at": None, "created_at": next_at}
    refused = {**retrying, "id": 2, "url": "https://hooks.slack.com/services/[redacted]",
               "format": "slack", "status": "failed", "attempts": 1, "last_status": 404,
               "last_error": "HTTP 404", "next_attempt_at": None}
    unreachable = {**retrying, "id": 3, "url": "http://10.0.0.9:9/" + "very-long-path/" * 12,
                   "status": "failed", "attempts": 7, "last_status": None,
                   "last_error": "ConnectError: [Errno 111] Connection refused",
                   "next_attempt_at": None}
    delivered = {**retrying, "status": "delivered", "attempts": 3, "last_status": 200,
                 "last_error": None, "next_attempt_at": None, "delivered_at": next_at}
    answers = [[retrying, refused, unreachable], [delivered, refused, unreachable]]
    reads = []

    def notifications(route):
        reads.append(route.request)
        route.fulfill(json={"task_id": task_id, "notifications": answers[min(len(reads), 2) - 1]})

    tab = open_dashboard(quiet_server, token=ADMIN)
    tab.page.route(lambda url: url.endswith(f"/ops/tasks/{task_id}/notifications"),
                   notifications)
    tab.page.evaluate("id => { location.hash = `#/tasks/${id}`; }", task_id)
    tab.page.wait_for_selector(DELIVERIES)
    clock = tab.page.evaluate("iso => new Date(iso).toTimeString().slice(0, 8)", next_at)
    first = shown(tab)
    assert [(d["status"], d["text"], d["error"]) for d in first] == [
        ("pending", f"retrying (2 attempts, next at {clock})", "Last error: HTTP 500"),
        ("failed", "failed: 404", None),  # the status says it: no error line
        ("failed", "failed after 7 attempts",
         "Last error: ConnectError: [Errno 111] Connection refused")]
    assert [d["url"] for d in first] == [d["url"] for d in answers[0]]  # as given

    wait_for_status_text(tab, "delivered after 3 attempts")  # read again while pending
    assert shown(tab)[0]["error"] is None
    poor = [r for r in tab.contrast_ratios() if r["ratio"] < 4.5]
    assert poor == [], poor
    tab.page.set_viewport_size(PHONE)  # the long URL wraps
    assert not tab.overflows_sideways()
    tab.page.set_viewport_size(DESKTOP)

    # A task without notifications shows no Notifications part at all.
    other = finished_task(quiet_server, "Quiet")
    with tab.page.expect_response(lambda r: r.url.endswith(f"/ops/tasks/{other}/notifications")
                                  ) as answer:
        tab.page.evaluate("id => { location.hash = `#/tasks/${id}`; }", other)
    assert answer.value.json() == {"task_id": other, "notifications": []}
    tab.page.wait_for_selector("#task-details .badge-done")
    assert tab.page.is_hidden("#notifications")
    assert tab.page.locator(DELIVERIES).count() == 0
    tab.assert_clean(ADMIN)
