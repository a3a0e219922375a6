"""Who is signed in, and what each role sees, in headless Chromium against a real gunicorn.

One server in dev mode with a credentials file (a viewer's and an operator's named tokens, an
operator signed in by the proxy) and proxy sign-in on (``X-Forwarded-Email``, believed from
127.0.0.1, where the browser is). A viewer sees tasks but no create form, no cancel and no
"Run again" button; an admin also sees the audit trail; a user the proxy signed in is never
asked for a token.
"""

from __future__ import annotations

import pytest

from app.credential_file import stanza
from app.roles import Role
from tests.support.api import ADMIN, SECRET
from tests.support.browser import DESKTOP, screenshot
from tests.support.live import GunicornServer, LiveAdmin
from tests.support.processes import wait_until

pytestmark = pytest.mark.live

VIEWER = "ops_viewer-token-for-vera-0123456789"
OPERATOR = "ops_operator-token-for-olga-0123456789"
PROXY_USER = "pat@example.com"
PROXY_HEADER = "X-Forwarded-Email"
PHONE = {"width": 375, "height": 640}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tokens = tmp_path_factory.mktemp("credentials") / "tokens.toml"
    tokens.write_text(stanza("vera", Role.VIEWER, VIEWER) + stanza("olga", Role.OPERATOR, OPERATOR)
                      + f'[[user]]\nemail = "{PROXY_USER}"\nrole = "operator"\n')
    with GunicornServer(env={
            "SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_STREAM_SECRET": SECRET, "DEV_LOCAL_LLM": "1",
            "OPS_DEV_TICK_SECONDS": "0.4", "OPS_TOKENS_FILE": str(tokens),
            "OPS_AUTH_PROXY_HEADER": PROXY_HEADER, "FORWARDED_ALLOW_IPS": "127.0.0.1"}) as running:
        yield running


def call(server, token: str, method: str, path: str, **kwargs) -> dict:
    """Call the API directly with ``token``."""
    response = LiveAdmin(server.url, token).request(method, path, **kwargs)
    assert response.ok, response.text
    return response.json()


def details(tab) -> dict[str, str]:
    """The task's details as shown: label → text."""
    return dict(tab.page.eval_on_selector_all("#task-details > dt", """labels => labels.map(dt =>
        [dt.textContent, dt.nextElementSibling?.innerText ?? ""])"""))


def audit_rows(tab) -> list[dict]:
    return tab.page.eval_on_selector_all("#audit-rows tr", """rows => rows.map(row => ({
        id: Number(row.dataset.auditId), action: row.dataset.action,
        cells: [...row.cells].map(cell => cell.innerText.trim())}))""")


def test_a_viewer_sees_tasks_but_no_create_form_and_no_cancel_button(server, open_dashboard):
    task = call(server, OPERATOR, "POST", "/ops/tasks", json={"title": "Deploy api (olga)"})
    tab = open_dashboard(server, token=VIEWER)
    assert tab.text("#session-user") == "vera · viewer"
    assert tab.page.is_visible("#sign-out")  # a pasted token is forgotten on request
    assert tab.stored_token() == VIEWER
    for absent in ("#create", "#create-form", "#task-title", "#view-audit", "#audit"):
        assert tab.page.is_hidden(absent), absent
    assert tab.page.is_visible("#view-workers")  # every role may see the server processes
    assert not tab.api_calls("/ops/recipes")  # nothing to create with: not even asked

    row = tab.page.locator(f'.task-row[data-task-id="{task["id"]}"]')
    row.wait_for()
    assert "by olga" in row.inner_text()
    row.click()
    tab.wait_for_event("created")  # the stream works: a viewer may mint stream tokens
    # The details come from the task's own read, which may land after the stream's first
    # event: wait for them rather than race them.
    wait_until(lambda: details(tab).get("Created by") == "olga", timeout=10)
    assert tab.page.is_hidden("#cancel-task")  # not merely disabled: not there
    tab.wait_for_event("done")
    assert tab.page.is_hidden("#cancel-task")
    assert tab.page.is_hidden("#relaunch-task")  # a viewer may not create: no "Run again"

    # "Created by: Me": vera created nothing.
    tab.page.select_option("#owner-filter", "vera")
    tab.page.wait_for_selector("#list-empty", state="visible")
    assert tab.rows() == []
    assert any("created_by=vera" in c.url for c in tab.api_calls("/ops/tasks?"))
    tab.page.select_option("#owner-filter", "")
    tab.wait_for_row(task["id"], "done")
    tab.page.set_viewport_size(PHONE)
    assert not tab.overflows_sideways()
    assert tab.page.is_visible("#session-user") and tab.page.is_visible("#sign-out")

    # Only the first call, the page's question whether the proxy signed anyone in, went
    # without the token.
    without = [c.url for c in tab.api_calls() if c.headers.get("x-admin-token") != VIEWER]
    assert without == [f"{server.url}/ops/whoami"]
    tab.assert_clean(VIEWER)
    assert VIEWER not in server.log()


def test_an_admin_sees_the_audit_trail(server, open_dashboard, tmp_path):
    created = call(server, OPERATOR, "POST", "/ops/tasks", json={"title": "Roll back web"})
    call(server, OPERATOR, "POST", f"/ops/tasks/{created['id']}/cancel")
    more = [call(server, OPERATOR, "POST", "/ops/tasks", json={"title": f"Batch {n}"})["id"]
            for n in range(10)]
    tab = open_dashboard(server, token=ADMIN)
    assert tab.text("#session-user") == "admin · admin"
    assert tab.page.is_visible("#create") and tab.page.is_visible("#view-audit")
    tab.page.click("#view-audit")
    tab.page.wait_for_selector("#audit", state="visible")
    assert tab.page.is_hidden("#dashboard")
    assert tab.page.get_attribute("#view-audit", "aria-current") == "page"
    tab.page.wait_for_selector(f'#audit-rows tr[data-action="task.create"] '
                               f'a[href="#/tasks/{created["id"]}"]')
    rows = audit_rows(tab)
    ids = [r["id"] for r in rows]
    assert ids == sorted(ids, reverse=True)  # newest first
    create = next(r for r in rows if r["cells"][3] == f"#{created['id']}"
                  and r["action"] == "task.create")
    time, actor, action, task, outcome, client = create["cells"]
    assert (actor, action, outcome, client) == ("olga", "task.create", "ok", "127.0.0.1")
    assert time[:4].isdigit()
    screenshot(tab.page, "dashboard-audit.png", tmp_path)

    # Filtered by actor and action; paged with "Older".
    tab.page.fill("#audit-actor", "olga")
    tab.page.select_option("#audit-page-size", "10")
    tab.page.select_option("#audit-action", "task.create")
    tab.page.wait_for_function("""() => { const rows = [...document.querySelectorAll(
        '#audit-rows tr')]; return rows.length === 10 && rows.every(r =>
        r.dataset.action === 'task.create' && r.cells[1].textContent === 'olga'); }""")
    first = audit_rows(tab)
    assert first[0]["cells"][3] == f"#{more[-1]}"
    assert tab.page.is_disabled("#audit-newer")
    tab.page.click("#audit-older")
    tab.page.wait_for_function("id => [...document.querySelectorAll('#audit-rows tr')]"
                               ".every(r => Number(r.dataset.auditId) < id)",
                               arg=first[-1]["id"])
    assert f"#{created['id']}" in [r["cells"][3] for r in audit_rows(tab)]
    assert "Page 2" in tab.text("#audit-page-label")
    tab.page.click("#audit-newer")
    tab.page.wait_for_function("id => document.querySelector('#audit-rows tr')"
                               "?.dataset.auditId === String(id)", arg=first[0]["id"])

    tab.page.select_option("#audit-action", "task.cancel")
    tab.page.wait_for_function("""() => { const rows = [...document.querySelectorAll(
        '#audit-rows tr')]; return rows.length > 0
        && rows.every(r => r.dataset.action === 'task.cancel'); }""")
    poor = [r for r in tab.contrast_ratios() if r["ratio"] < 4.5]
    assert poor == [], poor
    tab.page.set_viewport_size(PHONE)  # the table scrolls in its own box, not the page
    assert not tab.overflows_sideways()
    assert tab.page.is_visible("#view-audit") and tab.page.is_visible("#session-user")
    tab.page.set_viewport_size(DESKTOP)

    # A record's task link opens the task, with who created and canceled it.
    tab.page.click(f'#audit-rows a[href="#/tasks/{created["id"]}"]')
    tab.page.wait_for_selector("#dashboard", state="visible")
    tab.page.wait_for_selector("#task-details .badge-canceled")
    assert tab.page.is_hidden("#audit")
    wait_until(lambda: (details(tab).get("Created by"), details(tab).get("Canceled by"))
               == ("olga", "olga"), timeout=10)
    assert all(c.headers.get("x-admin-token") == ADMIN for c in tab.api_calls("/ops/audit"))
    tab.assert_clean(ADMIN)


def test_a_user_the_proxy_signed_in_is_not_asked_for_a_token(server, open_dashboard):
    tab = open_dashboard(server, headers={PROXY_HEADER: PROXY_USER})
    assert tab.settled() == "in"
    tab.signed_in()
    assert tab.page.is_hidden("#sign-in") and tab.page.is_hidden("#checking")
    assert tab.text("#session-user") == f"{PROXY_USER} · operator"
    assert tab.page.is_hidden("#sign-out")  # the proxy's sign-in is the proxy's to end
    assert tab.page.is_hidden("#view-audit")  # an operator has no audit view
    assert tab.stored_token() is None

    task_id = tab.create("Deploy worker (pat)")  # a POST from the page passes the site check
    tab.wait_for_event("created")
    assert tab.page.is_visible("#cancel-task")  # an operator may cancel
    wait_until(lambda: details(tab).get("Created by") == PROXY_USER, timeout=10)
    tab.page.wait_for_selector(f'.task-row[data-task-id="{task_id}"]')
    assert f"by {PROXY_USER}" in tab.page.inner_text(f'.task-row[data-task-id="{task_id}"]')
    tab.wait_for_event("done")
    assert call(server, ADMIN, "GET", f"/ops/tasks/{task_id}")["created_by"] == PROXY_USER

    # "Run again" on the finished task opens a new one made as it was.
    tab.page.wait_for_selector("#relaunch-task", state="visible")
    tab.page.click("#relaunch-task")
    tab.page.wait_for_function("id => location.hash !== `#/tasks/${id}`", arg=task_id)
    again = int(tab.page.evaluate("location.hash").rsplit("/", 1)[1])
    tab.page.wait_for_function(
        "id => document.querySelector('#task-heading').textContent.startsWith(`Task #${id}:`)",
        arg=again)
    assert tab.text("#task-heading") == f"Task #{again}: Deploy worker (pat)"
    wait_until(lambda: details(tab).get("Run again from") == f"Task #{task_id}", timeout=10,
               message="the details of the task run again")
    relaunched = call(server, ADMIN, "GET", f"/ops/tasks/{again}")
    assert (relaunched["relaunched_from"], relaunched["created_by"]) == (task_id, PROXY_USER)

    assert tab.streams() and all(s["token"] for s in tab.streams())  # stream tokens still
    assert not [c for c in tab.requests if "x-admin-token" in c.headers]
    tab.assert_clean(ADMIN)
