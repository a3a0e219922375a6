"""The dashboard at /ops/ui in headless Chromium against a real gunicorn.

Two servers in dev mode: a quick one (ticks 0.4 s apart) and a slow one (ticks 1.5 s apart,
stream tokens valid 2 s) on which a task runs long enough to cancel it, reload mid-stream,
and see the page renew its stream token several times.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.support.api import ADMIN, SECRET
from tests.support.browser import DESKTOP, LOG_AT_BOTTOM, TOKEN_KEY
from tests.support.browser import screenshot as save_screenshot
from tests.support.live import GunicornServer
from tests.support.processes import ROOT, wait_until
from tests.support.sse import DEV_KINDS

pytestmark = pytest.mark.live

SCREENSHOT = ROOT / "docs" / "img" / "dashboard.png"
PHONE = {"width": 375, "height": 300}


def dev_server(tick_seconds: float, **env: str) -> GunicornServer:
    return GunicornServer(env={"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_STREAM_SECRET": SECRET,
                               "DEV_LOCAL_LLM": "1", "OPS_DEV_TICK_SECONDS": str(tick_seconds),
                               **env})


@pytest.fixture(scope="module")
def quick_server():
    with dev_server(0.4) as server:
        yield server


@pytest.fixture(scope="module")
def slow_server():
    with dev_server(1.5, OPS_STREAM_TOKEN_TTL="2") as server:
        yield server


def api(server, method: str, path: str, **kwargs):
    """Call the API directly, as an admin."""
    response = server.admin.request(method, path, **kwargs)
    assert response.ok, response.text
    return response.json()


def task_status(server, task_id: int) -> str:
    return api(server, "GET", f"/ops/tasks/{task_id}")["status"]


def assert_whole_log(events: list[dict]) -> None:
    """The dev task's events, each once and in order."""
    assert [e["kind"] for e in events] == DEV_KINDS
    ids = [e["id"] for e in events]
    assert ids == sorted(set(ids))
    assert [e["text"] for e in events if e["kind"] == "tick"] == [f"tick {n}" for n in (1, 2, 3, 4)]


def test_wrong_token_is_refused_and_sign_out_forgets_the_token(quick_server, open_dashboard):
    tab = open_dashboard(quick_server)
    tab.sign_in("not-the-admin-token")
    tab.page.wait_for_selector("#sign-in-error", state="visible")
    assert "Wrong token" in tab.text("#sign-in-error")
    assert tab.page.is_hidden("#dashboard")
    assert tab.stored_token() is None

    tab.sign_in(ADMIN)
    tab.signed_in()
    assert tab.stored_token() == ADMIN
    assert tab.text("#session-user") == "admin · admin"
    tab.page.reload()  # the token lives in this tab's sessionStorage
    tab.signed_in()

    tab.page.click("#sign-out")
    tab.page.wait_for_selector("#sign-in", state="visible")
    assert tab.stored_token() is None
    assert tab.page.is_hidden("#dashboard")
    tab.page.reload()
    tab.page.wait_for_selector("#sign-in", state="visible")
    assert tab.page.is_hidden("#dashboard")

    # A token the server stopped accepting (it was changed) signs the tab out, saying why.
    tab.page.evaluate(f"sessionStorage.setItem({json.dumps(TOKEN_KEY)}, 'an-old-token')")
    tab.page.reload()
    tab.page.wait_for_selector("#sign-in-error", state="visible")
    assert "no longer accepts" in tab.text("#sign-in-error")
    assert tab.stored_token() is None
    tab.assert_clean(ADMIN)


def test_create_a_task_and_watch_it_live(quick_server, open_dashboard, tmp_path):
    earlier = api(quick_server, "POST", "/ops/tasks", json={"title": "Deploy web to staging"})
    api(quick_server, "POST", f"/ops/tasks/{earlier['id']}/cancel")
    tab = open_dashboard(quick_server)
    tab.page.keyboard.type(ADMIN)  # the token field has the focus
    tab.page.keyboard.press("Enter")
    tab.signed_in()
    assert tab.page.is_hidden("#recipe-fields")  # this server has no recipes
    assert tab.text("#runner-note").startswith("Dev mode: this task runs on the dev runner")

    task_id = tab.create("Build api", notes="release 1.2.3")
    # Live: a tick is shown while the task still runs, not all at the end.
    tab.page.wait_for_function("""() => document.querySelector('#event-log [data-kind=tick]')
        && !document.querySelector('#event-log [data-kind=done]')""")
    tab.wait_for_event("done")
    assert_whole_log(tab.log())
    tab.page.wait_for_selector("#task-details .badge-done")
    tab.page.wait_for_function("() => document.querySelector('#stream-state').textContent"
                               " === 'Stream ended'")
    assert tab.page.is_disabled("#cancel-task")
    assert "release 1.2.3" in tab.text("#task-details")
    tab.wait_for_row(task_id, "done")  # the list refreshed by itself
    tab.wait_for_row(earlier["id"], "canceled")
    ids = [row["id"] for row in tab.rows()]
    assert ids == sorted(ids, reverse=True) and ids.index(task_id) < ids.index(earlier["id"])

    # The admin token went in headers only; the stream used a stream token.
    calls = tab.api_calls()
    assert calls and all(c.headers.get("x-admin-token") == ADMIN for c in calls)
    streams = tab.streams()
    assert streams and all(s["token"] and not s["admin_header"] for s in streams)
    assert streams[0]["last_event_id"] == 0
    tab.assert_clean(ADMIN)
    assert ADMIN not in quick_server.log()  # the access log holds the stream URLs

    # docs/img/dashboard.png is refreshed on request only: a test run leaves the tree clean.
    shot = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path / "shot.png"
    tab.page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000


def test_status_filter_and_paging(quick_server, open_dashboard):
    done = api(quick_server, "POST", "/ops/tasks", json={"title": "Finish me"})
    batch = [api(quick_server, "POST", "/ops/tasks", json={"title": f"Batch {n}"})["id"]
             for n in range(11)]
    for task_id in batch:
        api(quick_server, "POST", f"/ops/tasks/{task_id}/cancel")
    wait_until(lambda: all(task_status(quick_server, t) == "canceled" for t in batch),
               message="the batch canceled")
    wait_until(lambda: task_status(quick_server, done["id"]) == "done", message="a done task")

    tab = open_dashboard(quick_server)
    tab.sign_in(ADMIN)
    tab.signed_in()
    tab.page.select_option("#page-size", "10")
    tab.page.select_option("#status-filter", "canceled")
    tab.page.wait_for_function("""() => { const rows = [...document.querySelectorAll('.task-row')];
        return rows.length === 10 && rows.every(r => r.dataset.status === 'canceled'); }""")
    first = [row["id"] for row in tab.rows()]
    assert first == sorted(first, reverse=True)
    assert tab.page.is_disabled("#newer")

    tab.page.click("#older")
    tab.page.wait_for_function("id => [...document.querySelectorAll('.task-row')]"
                               ".every(r => Number(r.dataset.taskId) < id)", arg=first[-1])
    second = tab.rows()
    assert second and all(row["status"] == "canceled" for row in second)
    assert "Page 2" in tab.text("#page-label")

    tab.page.click("#newer")
    tab.page.wait_for_function("id => document.querySelector('.task-row')?.dataset.taskId"
                               " === String(id)", arg=first[0])
    assert [row["id"] for row in tab.rows()] == first

    tab.page.select_option("#status-filter", "done")
    tab.wait_for_row(done["id"], "done")
    assert {row["status"] for row in tab.rows()} == {"done"}
    tab.assert_clean(ADMIN)


def test_a_dropped_stream_is_reopened_with_a_new_token(quick_server, open_dashboard):
    tab = open_dashboard(quick_server)
    dropped = []

    def drop_twice(route):
        if len(dropped) < 2:
            dropped.append(route.request.url)
            return route.abort("connectionreset")
        route.fallback()

    tab.page.route(lambda url: "/stream?" in url, drop_twice)
    tab.sign_in(ADMIN)
    tab.signed_in()
    tab.create("Build over a bad network")
    tab.wait_for_event("done")
    assert_whole_log(tab.log())
    assert len(dropped) == 2
    streams = tab.streams()
    assert len(streams) >= 3
    grants = [c for c in tab.api_calls("/ops/stream_tokens") if c.method == "POST"]
    assert len(grants) == len(streams)  # every attempt asked for a fresh token
    tab.assert_clean(ADMIN)


@pytest.mark.slow
def test_reload_mid_stream_resumes_without_duplicates(slow_server, open_dashboard):
    tab = open_dashboard(slow_server)
    tab.sign_in(ADMIN)
    tab.signed_in()
    task_id = tab.create("Long build")
    tab.wait_for_event("tick")
    assert task_status(slow_server, task_id) == "running"
    before = len(tab.streams())

    tab.page.reload()
    tab.page.wait_for_selector("#task-view", state="visible")  # the hash reopened the task
    assert tab.page.evaluate("location.hash") == f"#/tasks/{task_id}"
    tab.wait_for_event("done")
    assert_whole_log(tab.log())

    # Tokens live 2 s here: the page renewed them and resumed after the last event shown.
    after_reload = tab.streams()[before:]
    assert len(after_reload) >= 2, after_reload
    assert after_reload[0]["last_event_id"] == 0
    resumed = [s["last_event_id"] for s in after_reload[1:]]
    assert resumed == sorted(resumed) and resumed[-1] > 0
    grants = [c for c in tab.api_calls("/ops/stream_tokens") if c.method == "POST"]
    assert len(grants) >= len(tab.streams())  # a reload may cut one grant short
    tab.assert_clean(ADMIN)
    assert ADMIN not in slow_server.log()


@pytest.mark.slow
def test_cancel_a_running_task(slow_server, open_dashboard):
    tab = open_dashboard(slow_server)
    tab.sign_in(ADMIN)
    tab.signed_in()
    task_id = tab.create("Deploy that takes a while")
    tab.wait_for_event("status")
    tab.page.click("#cancel-task")
    tab.wait_for_event("canceled")
    kinds = [e["kind"] for e in tab.log()]
    assert kinds[:2] == ["created", "status"] and kinds[-1] == "canceled"
    assert kinds.count("tick") < 4 and "done" not in kinds
    assert "canceled by admin" in tab.log()[-1]["text"]
    tab.page.wait_for_selector("#task-details .badge-canceled")
    assert tab.page.is_disabled("#cancel-task")
    tab.wait_for_row(task_id, "canceled")
    assert task_status(slow_server, task_id) == "canceled"
    tab.page.wait_for_function(STREAM_ENDED)
    assert "requested" not in tab.text("#task-details")
    tab.assert_clean(ADMIN)


STREAM_ENDED = "() => document.querySelector('#stream-state').textContent === 'Stream ended'"


@pytest.mark.slow
def test_a_cancel_answered_after_the_end_leaves_the_end_shown(slow_server, open_dashboard,
                                                              tmp_path):
    """The cancel's answer arrives after the stream's terminal event (as it did 2 runs of 2):
    the final state, not "Cancel requested…", stays next to the badge."""
    tab = open_dashboard(slow_server)
    held = []

    def hold_cancel(route):
        held.append((route, route.fetch()))  # the server cancels now; the page hears later

    tab.page.route(lambda url: url.endswith("/cancel"), hold_cancel)
    tab.sign_in(ADMIN)
    tab.signed_in()
    task_id = tab.create("Deploy web, canceled halfway")
    tab.wait_for_event("tick")
    tab.page.click("#cancel-task")
    tab.wait_for_event("canceled")
    tab.page.wait_for_selector("#task-details .badge-canceled")
    tab.page.wait_for_function(STREAM_ENDED)
    assert len(held) == 1
    route, answer = held[0]
    assert answer.status == 202  # the task was running: the stop was only requested
    with tab.page.expect_request(lambda r: r.method == "GET"
                                 and r.url.endswith(f"/ops/tasks/{task_id}")):
        route.fulfill(response=answer)  # the page handles the answer, then reloads the task
    tab.page.wait_for_function(STREAM_ENDED)
    assert tab.text("#stream-state") == "Stream ended"
    assert "requested" not in tab.text("#task-details")
    tab.page.wait_for_selector(f'.task-row[data-task-id="{task_id}"][data-status="canceled"]')
    tab.page.wait_for_function("() => !document.querySelector('#task-list[aria-busy=true]')")
    save_screenshot(tab.page, "dashboard-canceled.png", tmp_path)
    tab.assert_clean(ADMIN)


def test_a_missing_task_says_so_and_nothing_else(quick_server, open_dashboard, tmp_path):
    task = api(quick_server, "POST", "/ops/tasks", json={"title": "A task that exists"})
    tab = open_dashboard(quick_server)
    tab.sign_in(ADMIN)
    tab.signed_in()
    tab.page.evaluate("location.hash = '#/tasks/999999'")
    tab.page.wait_for_function("() => document.querySelector('#task-heading').textContent"
                               " === 'Task 999999 not found'")
    for hidden in ("#task-body", "#cancel-task", "#event-log", "#output", "#task-error"):
        assert tab.page.is_hidden(hidden), hidden
    visible = tab.page.eval_on_selector("#task-view", """view => [...view.querySelectorAll('*')]
        .filter(el => el.getClientRects().length && !el.children.length)
        .map(el => el.textContent.trim())""")
    assert visible == ["Task 999999 not found", "Close"]
    save_screenshot(tab.page, "dashboard-not-found.png", tmp_path)

    tab.page.evaluate(f"location.hash = '#/tasks/{task['id']}'")  # a task that exists again
    tab.wait_for_event("created")
    assert tab.page.is_visible("#cancel-task")
    assert tab.text("#task-heading") == f"Task #{task['id']}: A task that exists"
    tab.assert_clean(ADMIN)


# Watches, frame by frame, the open task's running duration and its row's: every value shown
# by the details, and any moment at which the two differed.
WATCH_DURATIONS = """(id) => {
    const details = document.querySelector('#task-details .duration[data-running]');
    const row = document.querySelector(`.task-row[data-task-id="${id}"] .duration`);
    if (!details || !row) return false;
    const seen = (window.durationsSeen ??= []);
    if (details.textContent !== row.textContent) {
        (window.durationsDiffer ??= []).push([details.textContent, row.textContent]);
    }
    if (seen.at(-1) !== details.textContent) seen.push(details.textContent);
    return seen.length >= 4;
}"""


@pytest.mark.slow
def test_list_and_details_show_one_live_clock(slow_server, open_dashboard):
    """Both durations of a running task come from one clock that ticks each second; the
    browser's own clock is 45 s slow here, which the server's answers correct."""
    tab = open_dashboard(slow_server)
    tab.page.add_init_script("{ const real = Date.now; Date.now = () => real() - 45000; }")
    tab.page.reload()
    tab.sign_in(ADMIN)
    tab.signed_in()
    task_id = tab.create("Count up while it runs")
    tab.page.wait_for_function(WATCH_DURATIONS, arg=task_id, polling="raf", timeout=20_000)
    seen = tab.page.evaluate("window.durationsSeen")
    assert tab.page.evaluate("window.durationsDiffer ?? []") == []
    seconds = [int(text.removesuffix(" s")) for text in seen]
    assert seconds == sorted(set(seconds)) and seconds[-1] < 10, seen  # counts up, from start
    tab.wait_for_event("done")
    tab.page.wait_for_selector(f'.task-row[data-task-id="{task_id}"][data-status="done"]')
    final = tab.page.evaluate("""(id) => [
        document.querySelector('#task-details .duration').textContent,
        document.querySelector(`.task-row[data-task-id="${id}"] .duration`).textContent]""",
                              task_id)
    assert final[0] == final[1] and final[0].endswith(" s"), final
    tab.assert_clean(ADMIN)


def test_a_list_that_cannot_load_says_so_above_the_list(quick_server, open_dashboard, tmp_path):
    for n in range(3):
        api(quick_server, "POST", "/ops/tasks", json={"title": f"Listed {n}"})
    tab = open_dashboard(quick_server)
    tab.sign_in(ADMIN)
    tab.signed_in()
    tab.page.wait_for_selector(".task-row")
    tab.page.wait_for_function("() => !document.querySelector('#task-list[aria-busy=true]')")
    shown = [row["id"] for row in tab.rows()]

    def unavailable(route):
        if route.request.method != "GET":
            return route.fallback()
        route.fulfill(status=503, json={"error": "the store is unreachable"})

    tab.page.route(lambda url: "/ops/tasks?" in url, unavailable)
    tab.page.click("#refresh")
    tab.page.wait_for_selector("#list-error", state="visible")
    assert tab.text("#list-error").startswith("Could not load the tasks: the store is unreachable")
    error = tab.page.locator("#list-error").bounding_box()
    listed = tab.page.locator("#task-list").bounding_box()
    assert error["y"] + error["height"] <= listed["y"]  # above the (stale) list
    assert 0 <= error["y"] and error["y"] + error["height"] <= DESKTOP["height"]  # in view
    assert [row["id"] for row in tab.rows()] == shown  # the old list stays, below the error
    save_screenshot(tab.page, "dashboard-list-error.png", tmp_path)

    tab.page.unroute_all()
    tab.page.click("#refresh")
    tab.page.wait_for_selector("#list-error", state="hidden")
    tab.assert_clean(ADMIN)


@pytest.mark.slow
def test_phone_width_and_the_log_follows_unless_scrolled_up(slow_server, open_dashboard):
    tab = open_dashboard(slow_server, viewport=PHONE)
    assert not tab.overflows_sideways()
    tab.sign_in(ADMIN)
    tab.signed_in()
    tab.create("Watch on a phone")
    assert tab.page.is_visible("#task-view")  # on a phone the open task comes first
    tab.page.wait_for_function("() => { const log = document.querySelector('#event-log');"
                               " return log.scrollHeight > log.clientHeight + 20; }")
    assert tab.log_at_bottom(), "the log did not follow the newest event"
    assert not tab.overflows_sideways()

    tab.page.eval_on_selector("#event-log", "log => log.scrollTo(0, 0)")
    tab.page.wait_for_function("() => document.querySelector('#event-log').scrollTop === 0")
    shown = len(tab.log())
    tab.page.wait_for_function(f"() => document.querySelectorAll('#event-log li').length > {shown}")
    assert tab.page.evaluate("document.querySelector('#event-log').scrollTop") == 0
    tab.page.wait_for_selector("#jump-latest", state="visible")

    tab.page.click("#jump-latest")
    assert tab.log_at_bottom()
    tab.wait_for_event("done")
    tab.page.wait_for_function(LOG_AT_BOTTOM)
    assert_whole_log(tab.log())
    tab.assert_clean(ADMIN)


def test_recipe_form_sends_the_recipe_and_its_params(quick_server, open_dashboard):
    tab = open_dashboard(quick_server)
    sent = []

    def recipes(route):
        route.fulfill(json={"recipes": [
            {"name": "build", "description": "Build the images", "params": {}},
            {"name": "deploy", "description": "Deploy a tagged release",
             "params": {"ref": {"pattern": "v[0-9]+(\\.[0-9]+)*"}}}]})

    def tasks(route):
        if route.request.method != "POST":
            return route.fallback()
        sent.append(route.request.post_data_json)
        route.fulfill(status=422, json={"error": "params.ref: no such tag v9.9.9"})

    tab.page.route(lambda url: url.endswith("/ops/recipes"), recipes)
    tab.page.route(lambda url: url.endswith("/ops/tasks"), tasks)
    tab.page.reload()
    tab.sign_in(ADMIN)
    tab.signed_in()
    tab.page.wait_for_selector("#recipe-fields", state="visible")
    tab.page.select_option("#task-recipe", "deploy")
    tab.page.wait_for_selector("[data-param=ref]")
    assert "Deploy a tagged release" in tab.text("#recipe-description")

    tab.page.fill("#task-title", "Deploy api")
    tab.page.fill("#task-notes", "to staging")
    tab.page.fill("[data-param=ref]", "not a ref")
    tab.page.click("#create-button")
    tab.page.wait_for_selector("#create-error", state="visible")
    assert "ref must match" in tab.text("#create-error")
    assert sent == []  # refused before anything was sent

    tab.page.fill("[data-param=ref]", "v9.9.9")
    tab.page.click("#create-button")
    tab.page.wait_for_function("() => document.querySelector('#create-error')"
                               ".textContent.includes('no such tag')")
    assert sent == [{"title": "Deploy api", "body": "to staging", "recipe": "deploy",
                     "params": {"ref": "v9.9.9"}}]
    tab.assert_clean(ADMIN)


def test_keyboard_reaches_everything_and_text_is_readable(quick_server, open_dashboard):
    task = api(quick_server, "POST", "/ops/tasks", json={"title": "Reach me by keyboard"})
    tab = open_dashboard(quick_server)
    tab.sign_in(ADMIN)
    tab.signed_in()
    tab.page.wait_for_selector(f'.task-row[data-task-id="{task["id"]}"]')
    assert tab.focused() == "task-title"
    tab.page.keyboard.press("Shift+Tab")
    reached = [tab.focused()]
    for _ in range(40):
        tab.page.keyboard.press("Tab")
        reached.append(tab.focused())
        if reached[-1] == f"task-{task['id']}":
            break
    assert {"sign-out", "task-title", "task-notes", "create-button", "status-filter",
            "page-size", "refresh", f"task-{task['id']}"} <= set(reached), reached
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_selector("#task-view", state="visible")
    tab.wait_for_event("created")

    ratios = tab.contrast_ratios()
    assert len(ratios) > 20
    poor = [r for r in ratios if r["ratio"] < 4.5]
    assert poor == [], poor
    tab.assert_clean(ADMIN)

