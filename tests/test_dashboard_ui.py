"""The dashboard's page and files as served (no browser): headers, policy and content rules."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from app.http.ui import UI_DIR
from tests.support.api import ADMIN, make_settings

STATIC = UI_DIR / "static"
PAGE_PATHS = ("/ops/ui", "/ops/ui/")


class PageParser(HTMLParser):
    """Collects what a Content-Security-Policy of 'self' would refuse, and the files used."""

    def __init__(self):
        super().__init__()
        self.inline_scripts = 0
        self.inline_styles = []
        self.handlers = []
        self.assets = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            if attrs.get("src"):
                self.assets.append(attrs["src"])
            else:
                self.inline_scripts += 1
        if tag == "style":
            self.inline_styles.append("<style>")
        if tag == "link" and attrs.get("href"):
            self.assets.append(attrs["href"])
        if "style" in attrs:
            self.inline_styles.append(f"<{tag} style=...>")
        self.handlers += [f"<{tag} {name}>" for name in attrs if name.startswith("on")]


def parse_page(client) -> PageParser:
    parser = PageParser()
    parser.feed(client.get("/ops/ui").get_data(as_text=True))
    return parser


@pytest.mark.parametrize("path", PAGE_PATHS)
def test_page_is_served_without_auth_and_with_a_self_only_policy(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy and "http" not in policy and "*" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_page_has_no_inline_script_style_or_handler(client):
    page = parse_page(client)
    assert page.inline_scripts == 0
    assert page.inline_styles == []
    assert page.handlers == []


def test_page_passes_the_api_root_and_holds_no_secret(client):
    html = client.get("/ops/ui").get_data(as_text=True)
    assert 'data-api-root="/ops"' in html
    assert ADMIN not in html


def test_every_asset_the_page_uses_is_served_with_the_policy(client):
    assets = parse_page(client).assets
    assert {a.rsplit("/", 1)[-1] for a in assets} >= {"main.js", "dashboard.css"}
    for asset in assets:
        assert asset.startswith("/ops/ui/static/"), asset  # own origin, no third-party host
        with client.get(asset) as response:  # a file answer holds the file open
            assert response.status_code == 200, asset
            assert "Content-Security-Policy" in response.headers
            assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("name, mimetype", [("main.js", "text/javascript"),
                                            ("dashboard.css", "text/css")])
def test_static_files_have_the_right_type(client, name, mimetype):
    with client.get(f"/ops/ui/static/{name}") as response:
        assert response.mimetype == mimetype


def test_every_imported_module_exists(client):
    """ES module imports resolve against the static folder; a typo would break the page."""
    for script in STATIC.glob("*.js"):
        for target in re.findall(r'from\s+"\./([\w-]+\.js)"', script.read_text()):
            with client.get(f"/ops/ui/static/{target}") as response:
                assert response.status_code == 200, (script, target)


@pytest.mark.parametrize("path", sorted(p.name for p in STATIC.glob("*.js")))
def test_scripts_use_no_third_party_host_html_strings_or_admin_token_urls(path):
    source = (STATIC / path).read_text()
    assert not re.search(r"https?://", source)
    assert "innerHTML" not in source and "insertAdjacentHTML" not in source
    assert "eval(" not in source
    assert "admin_token" not in source  # the dev-only query parameter is never used
    assert "localStorage" not in source and "cookie" not in source  # the tab's session only


@pytest.mark.parametrize("path", sorted(p.name for p in STATIC.glob("*.js")))
def test_scripts_write_no_style_attribute(path):
    """A style attribute breaks the page's style-src 'self'; the output view sets its few
    computed sizes and offsets through the CSSOM (``node.style.height = ...``), which the policy
    allows, and colours through classes."""
    source = (STATIC / path).read_text()
    assert not re.search(r"""setAttribute\(\s*["']style|cssText|\bstyle\s*:""", source)


def test_output_rows_have_the_height_the_script_assumes():
    row_px = re.search(r"const ROW_PX = (\d+);", (STATIC / "log-view.js").read_text())[1]
    css = (STATIC / "dashboard.css").read_text()
    rule = re.search(r"\.log-row \{([^}]*)\}", css)[1]
    assert f"height: {row_px}px" in rule and f"line-height: {row_px}px" in rule


def test_every_ansi_colour_has_a_class():
    css = (STATIC / "dashboard.css").read_text()
    for layer in ("fg", "bg"):
        for n in range(16):
            assert re.search(rf"\.ansi-{layer}-{n} \{{", css), (layer, n)
    for name in ("bold", "faint", "italic", "underline"):
        assert f".ansi-{name} {{" in css


def test_page_has_the_output_controls(client):
    html = client.get("/ops/ui").get_data(as_text=True)
    for element_id in ("output", "log-lines", "log-search", "log-prev", "log-next",
                       "log-matches", "log-follow", "log-download", "log-error"):
        assert f'id="{element_id}"' in html, element_id


def test_page_has_the_session_role_audit_and_workers_controls(client):
    html = client.get("/ops/ui").get_data(as_text=True)
    for element_id in ("checking", "session-user", "sign-out", "views", "view-tasks",
                       "view-audit", "owner-filter", "audit", "audit-actor", "audit-action",
                       "audit-rows", "audit-older", "audit-newer", "audit-error",
                       "view-workers", "workers", "workers-state", "workers-refresh",
                       "worker-rows", "workers-error", "workers-empty"):
        assert f'id="{element_id}"' in html, element_id
    assert 'href="#/workers"' in html and 'href="#/audit"' in html


def test_page_has_the_notifications_part_hidden_until_there_is_a_delivery(client):
    html = client.get("/ops/ui").get_data(as_text=True)
    for element_id in ("notifications", "notifications-heading", "notification-list"):
        assert f'id="{element_id}"' in html, element_id
    parser = Hidden()
    parser.feed(html)
    assert "notifications" in parser.ids


def test_every_delivery_status_has_a_colour():
    from app.notify.records import DELIVERED, FAILED, PENDING

    css = (STATIC / "dashboard.css").read_text()
    for status in (PENDING, DELIVERED, FAILED):
        assert re.search(rf"\.delivery-{status} \{{ color: #[0-9a-f]{{6}}; \}}", css), status


class Hidden(HTMLParser):
    """The ids of the elements the page starts with hidden."""

    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "hidden" in attrs and attrs.get("id"):
            self.ids.add(attrs["id"])


def test_page_shows_nothing_of_a_session_before_whoami_answers(client):
    """A user the proxy signed in never sees the token form flash; nobody sees a control
    before the page knows the role."""
    parser = Hidden()
    parser.feed(client.get("/ops/ui").get_data(as_text=True))
    assert {"sign-in", "session", "views", "dashboard", "audit", "view-audit",
            "workers"} <= parser.ids
    assert "checking" not in parser.ids


def test_page_says_whether_a_proxy_may_have_signed_the_user_in(client, make_app):
    assert 'data-proxy-sign-in="off"' in client.get("/ops/ui").get_data(as_text=True)
    proxied = make_app(make_settings(auth_proxy_header="X-Forwarded-Email")).test_client()
    assert 'data-proxy-sign-in="on"' in proxied.get("/ops/ui").get_data(as_text=True)


def test_unknown_static_file_is_a_json_404(client):
    response = client.get("/ops/ui/static/nope.js")
    assert response.status_code == 404
    assert "error" in response.get_json()


def _js_list(path, name: str, closing: str) -> tuple[set[str], str]:
    """The quoted words of the JavaScript literal ``name`` in ``path``, and its text."""
    import re

    script = path.read_text()
    start = script.index(f"{name} =")
    literal = script[start:script.index(closing, start)]
    return set(re.findall(r'"([a-z_]+)"', literal)), literal


def test_the_dashboard_knows_the_terminal_statuses_of_the_store():
    from pathlib import Path

    from app.store import TERMINAL_KINDS

    static = Path(__file__).resolve().parent.parent / "app" / "ui" / "static"
    terminal, _ = _js_list(static / "format.js", "TERMINAL", ";")
    assert terminal == set(TERMINAL_KINDS)


def test_the_page_listens_for_every_event_kind_the_runners_write():
    import re
    from pathlib import Path

    from app.store import TERMINAL_KINDS, WAITING

    root = Path(__file__).resolve().parent.parent
    code = "".join(p.read_text() for p in (root / "app" / "executor").rglob("*.py"))
    written = set(re.findall(r"""(?:ctx\.emit|self\._emit)\(\s*["']([a-z_]+)["']""", code))
    # Events sent together (ctx.emit_many): ("kind", {...}) tuples in a list or an append.
    written |= set(re.findall(r"""[\[(]\(\s*["']([a-z_]+)["'],\s*\{""", code))
    written |= {"created", "status", WAITING, *TERMINAL_KINDS}  # the store and executor's
    static = root / "app" / "ui" / "static"
    listed, literal = _js_list(static / "stream.js", "EVENT_KINDS", "];")
    if "...TERMINAL" in literal:
        listed |= _js_list(static / "format.js", "TERMINAL", ";")[0]
    assert {"tick", "log", "log_held", "log_cut", "text"} <= written
    assert written <= listed, written - listed
    assert not {"log_skipped", "log_limit"} & (written | listed)  # retired kinds
