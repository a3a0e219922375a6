"""Driving Debian's Chromium with Playwright: one tab on the dashboard that records what it does.

Playwright is used with the system's browser only (``executable_path``); it never downloads one.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Browser, Page, Request, sync_playwright

from .processes import ROOT, require_program

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 800}
TOKEN_KEY = "ops.adminToken"  # the page's sessionStorage key
IMAGES = ROOT / "docs" / "img"


def screenshot(page: Page, name: str, tmp_path: Path, **options) -> Path:
    """A screenshot of the page: ``docs/img/<name>`` with ``UPDATE_SCREENSHOTS=1``, else in
    ``tmp_path``, so that a test run leaves the tree as it was."""
    shot = (IMAGES if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path) / name
    page.screenshot(path=str(shot), **options)
    assert shot.stat().st_size > 10_000
    return shot


@contextlib.contextmanager
def chromium() -> Browser:
    """Headless Chromium from Debian, closed afterwards."""
    require_program("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Dashboard:
    """A fresh browser context with the dashboard open, recording every request it makes,
    every Content-Security-Policy violation and every uncaught script error."""

    def __init__(self, browser: Browser, base_url: str, viewport=DESKTOP,
                 headers: dict[str, str] | None = None):
        """``headers`` go with every request the tab makes (a proxy's sign-in header)."""
        self.base_url = base_url
        self.context = browser.new_context(viewport=viewport, extra_http_headers=headers)
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.requests: list[Request] = []
        self.problems: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request))
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))

    def _console(self, message) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.problems.append(message.text)

    def close(self) -> None:
        self.context.close()

    # -- actions --------------------------------------------------------------------------

    def open(self, path: str = "/ops/ui") -> Dashboard:
        """Open the page and wait until it knows who is signed in (or that nobody is)."""
        self.page.goto(self.base_url + path)
        self.settled()
        return self

    def settled(self) -> str:
        """Wait until /ops/whoami has answered; ``"in"`` or ``"out"``."""
        self.page.wait_for_selector("body[data-session]", state="attached")
        return self.page.evaluate("document.body.dataset.session")

    def sign_in(self, token: str) -> None:
        self.page.fill("#admin-token", token)
        self.page.press("#admin-token", "Enter")

    def signed_in(self) -> None:
        self.page.wait_for_selector("#dashboard", state="visible")
        self.page.wait_for_selector('#task-list[aria-busy="false"]', state="attached")

    def create(self, title: str, notes: str = "") -> int:
        """Create a task with the form; return its id once its view is open."""
        self.page.fill("#task-title", title)
        self.page.fill("#task-notes", notes)
        self.page.click("#create-button")
        self.page.wait_for_function("() => /^#\\/tasks\\/\\d+$/.test(location.hash)")
        task_id = int(self.page.evaluate("location.hash").rsplit("/", 1)[1])
        self.page.wait_for_function(
            "id => document.querySelector('#task-heading').textContent.startsWith(`Task #${id}:`)",
            arg=task_id)
        return task_id

    def wait_for_event(self, kind: str, count: int = 1) -> None:
        self.page.wait_for_function(
            "([kind, count]) => document.querySelectorAll("
            "`#event-log li[data-kind=\"${kind}\"]`).length >= count", arg=[kind, count])

    def wait_for_row(self, task_id: int, status: str) -> None:
        self.page.wait_for_selector(f'.task-row[data-task-id="{task_id}"][data-status="{status}"]')

    # -- what the page shows --------------------------------------------------------------

    def log(self) -> list[dict]:
        """The event log as shown: id, kind and text of each line."""
        return self.page.eval_on_selector_all("#event-log li", """lines => lines.map(line => ({
            id: Number(line.dataset.eventId), kind: line.dataset.kind,
            text: line.querySelector('.text').textContent}))""")

    def rows(self) -> list[dict]:
        """The task list as shown: id and status of each row."""
        return self.page.eval_on_selector_all(".task-row", """rows => rows.map(row => ({
            id: Number(row.dataset.taskId), status: row.dataset.status}))""")

    def overflows_sideways(self) -> bool:
        return self.page.evaluate(OVERFLOWS_SIDEWAYS)

    def log_at_bottom(self) -> bool:
        return self.page.evaluate(LOG_AT_BOTTOM)

    def focused(self) -> str:
        """The focused element: ``task-<id>`` for a task row, else its id or tag."""
        return self.page.evaluate(FOCUSED)

    def contrast_ratios(self) -> list[dict]:
        return self.page.evaluate(CONTRAST_RATIOS)

    def stored_token(self) -> str | None:
        return self.page.evaluate(f"sessionStorage.getItem({json.dumps(TOKEN_KEY)})")

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)

    # -- what the page sent ---------------------------------------------------------------

    def streams(self) -> list[dict]:
        """The EventSource requests made: their stream token and last_event_id."""
        found = []
        for request in self.requests:
            if request.resource_type == "eventsource":
                query = parse_qs(urlsplit(request.url).query)
                found.append({"url": request.url, "token": query.get("token", [None])[0],
                              "last_event_id": int(query.get("last_event_id", ["-1"])[0]),
                              "admin_header": "x-admin-token" in request.headers})
        return found

    def api_calls(self, path_part: str = "/ops/") -> list[Request]:
        return [r for r in self.requests
                if r.resource_type == "fetch" and path_part in r.url]

    def assert_clean(self, admin_token: str) -> None:
        """No request URL carried the admin token, and the page broke no rule."""
        assert self.requests, "no request was recorded"
        leaked = [r.url for r in self.requests if admin_token in r.url]
        assert leaked == [], f"the admin token appeared in request URLs: {leaked}"
        assert admin_token not in self.page.url
        assert self.problems == []


OVERFLOWS_SIDEWAYS = "document.documentElement.scrollWidth > document.documentElement.clientWidth"

LOG_AT_BOTTOM = """() => { const log = document.querySelector('#event-log');
    return log.scrollHeight - log.scrollTop - log.clientHeight <= 8; }"""

FOCUSED = """() => { const el = document.activeElement;
    return el.dataset.taskId ? `task-${el.dataset.taskId}` : el.id || el.tagName; }"""

# The WCAG contrast ratio of every visible text element, and of a sample badge and log line
# of each kind.
CONTRAST_RATIOS = r"""() => {
    const list = document.querySelector('#task-list'), log = document.querySelector('#event-log');
    const samples = [];
    for (const status of ['queued', 'running', 'done', 'failed', 'canceled']) {
        const badge = document.createElement('span');
        badge.className = `badge badge-${status}`; badge.textContent = status;
        list.append(badge); samples.push(badge);
    }
    for (const kind of ['created', 'status', 'tick', 'log', 'done', 'failed', 'canceled']) {
        const line = document.createElement('li');
        line.className = `kind-${kind}`;
        for (const part of ['time', 'kind', 'text']) {
            const span = document.createElement('span');
            span.className = part; span.textContent = part; line.append(span);
        }
        log.append(line); samples.push(line);
    }
    const rgb = (color) => color.match(/[\d.]+/g).map(Number);
    const luminance = ([r, g, b]) => [r, g, b].map((v) => {
        v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    }).reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
    const background = (el) => {
        for (let node = el; node; node = node.parentElement) {
            const color = rgb(getComputedStyle(node).backgroundColor);
            if (color.length < 4 || color[3] > 0) return color;
        }
        return [255, 255, 255];
    };
    const selector = 'h1, h2, h3, label, p, dt, dd, button, a, .badge, .task-meta, .session-label,'
        + ' .session-user, th, td, .audit-detail, #event-log time, #event-log span, select, input,'
        + ' .delivery span, .delivery div';
    const ratios = [...document.querySelectorAll(selector)]
        .filter((el) => el.getClientRects().length
            && (el.textContent.trim() || el.matches('input')))
        .map((el) => {
            const [a, b] = [luminance(rgb(getComputedStyle(el).color)), luminance(background(el))];
            return { what: `${el.tagName}#${el.id}.${el.className}`,
                     ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05) };
        });
    samples.forEach((el) => el.remove());
    return ratios;
}"""
