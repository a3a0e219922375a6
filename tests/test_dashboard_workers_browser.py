"""The workers view (the server processes that share the queue) in headless Chromium.

One gunicorn in dev mode on the in-process store, so GET /ops/workers lists its one worker
process; a viewer (a named token) opens the view. The page's timers run on Playwright's clock,
so that the test moves time on instead of waiting for the 5-second refresh.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from app.credential_file import stanza
from app.roles import Role
from tests.support.api import live_env
from tests.support.browser import DESKTOP
from tests.support.live import GunicornServer, LiveAdmin
from tests.support.processes import wait_until

pytestmark = pytest.mark.live

VIEWER = "ops_viewer-token-for-vera-0123456789"
PHONE = {"width": 375, "height": 640}
REFRESH_MS = 5_000  # REFRESH_MS in workers-view.js
# Counts the page's reads of /ops/workers as they start (a timer's read starts at once).
COUNT_READS = """{ const real = window.fetch.bind(window); window.workerReads = 0;
    window.fetch = (input, init) => {
        if (String(input).endsWith('/ops/workers')) window.workerReads += 1;
        return real(input, init); }; }"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dev server whose tasks run for minutes (until canceled), with a viewer's token."""
    tokens = tmp_path_factory.mktemp("credentials") / "tokens.toml"
    tokens.write_text(stanza("vera", Role.VIEWER, VIEWER))
    with GunicornServer(live_env(DEV_LOCAL_LLM="1", OPS_DEV_TICK_SECONDS="0.1",
                                 OPS_DEV_TICKS="3000", OPS_TOKENS_FILE=str(tokens))) as running:
        yield running


def workers(server) -> list[dict]:
    """GET /ops/workers as the viewer."""
    response = LiveAdmin(server.url, VIEWER).get("/ops/workers")
    assert response.ok, response.text
    return response.json()["workers"]


def shown(tab) -> list[dict]:
    """The workers table as shown, a dict per row."""
    return tab.page.eval_on_selector_all("#worker-rows tr", """rows => rows.map(row => ({
        host: row.querySelector('.worker-host').textContent,
        mark: row.querySelector('.worker-this')?.textContent ?? null,
        pid: row.cells[1].textContent, pools: row.cells[2].textContent,
        load: row.cells[3].textContent, seen: row.cells[4].textContent,
        state: row.cells[5].textContent}))""")


def wait_for_load(tab, text: str, timeout: float = 15_000) -> None:
    tab.page.wait_for_function("text => document.querySelector('#worker-rows tr[data-this] "
                               ".worker-load')?.textContent === text", arg=text, timeout=timeout)


def test_the_workers_view_shows_this_process_its_load_and_refreshes(server, open_dashboard):
    tab = open_dashboard(server)
    tab.page.add_init_script(COUNT_READS)
    tab.page.clock.install()  # time flows as usual until the test moves or pauses it
    tab.page.reload()
    tab.settled()
    tab.sign_in(VIEWER)
    tab.signed_in()
    assert tab.page.is_visible("#view-workers")  # a viewer's view, like the endpoint
    assert tab.page.is_hidden("#view-audit")

    tab.page.click("#view-workers")
    tab.page.wait_for_selector("#worker-rows tr[data-this]")
    assert tab.page.is_hidden("#dashboard")
    assert tab.page.evaluate("location.hash") == "#/workers"
    assert tab.page.get_attribute("#view-workers", "aria-current") == "page"
    assert tab.page.eval_on_selector_all("#workers thead th", "cells => cells.map("
                                         "cell => cell.textContent)") == [
        "Host", "PID", "Pools", "Load", "Last seen", "State"]

    [me] = workers(server)
    assert me["this"] and me["live"] and me["pid"] in server.worker_pids()
    assert (me["pools"], me["running"]) == (None, 0)
    [row] = shown(tab)
    seen = row.pop("seen")
    assert row == {"host": me["host"], "mark": "this process", "pid": str(me["pid"]),
                   "pools": "every pool", "load": f"0 of {me['workers']} running",
                   "state": "live"}
    assert re.fullmatch(r"\d+ s ago", seen), seen
    assert tab.text("#workers-state") == "1 live"

    # A task runs: the next timed read shows it, without a click.
    task = server.admin.create("Keep a worker busy")
    wait_until(lambda: workers(server)[0]["running"] == 1, message="the task to run")
    tab.page.clock.fast_forward(REFRESH_MS)
    wait_for_load(tab, f"1 of {me['workers']} running")

    poor = [r for r in tab.contrast_ratios() if r["ratio"] < 4.5]
    assert poor == [], poor
    tab.page.set_viewport_size(PHONE)  # the table scrolls in its own box, not the page
    assert not tab.overflows_sideways()
    tab.page.set_viewport_size(DESKTOP)

    # With the page's time stopped no timer reads: Refresh alone shows the task's end.
    # (A second ahead of the page's own time: the page's clock runs on meanwhile, and a
    # timer due in that second fires before the count below is read.)
    now = tab.page.evaluate("Date.now()")
    tab.page.clock.pause_at(datetime.fromtimestamp(now / 1000 + 1, timezone.utc))
    assert server.admin.post(f"/ops/tasks/{task['id']}/cancel").ok
    wait_until(lambda: workers(server)[0]["running"] == 0, message="the task to end")
    reads = tab.page.evaluate("window.workerReads")
    tab.page.click("#workers-refresh")
    wait_for_load(tab, f"0 of {me['workers']} running", timeout=5_000)
    assert tab.page.evaluate("window.workerReads") == reads + 1

    # Left, the view reads no more, however long the page stays open.
    tab.page.click("#view-tasks")
    tab.page.wait_for_selector("#dashboard", state="visible")
    assert tab.page.is_hidden("#workers")
    reads = tab.page.evaluate("window.workerReads")
    tab.page.clock.run_for(6 * REFRESH_MS)
    assert tab.page.evaluate("window.workerReads") == reads

    calls = tab.api_calls("/ops/workers")
    assert calls and all(c.headers.get("x-admin-token") == VIEWER for c in calls)
    tab.assert_clean(VIEWER)
