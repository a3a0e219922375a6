"""docs/api.md against the app: it names every route the app serves, as `METHOD /path`."""

from __future__ import annotations

import pytest

from tests.support.processes import ROOT

API_DOC = ROOT / "docs" / "api.md"
# Files, not endpoints (the page names them once, as /ops/ui/static/…), and the same page as
# /ops/ui.
FILES = {"/ops/ui/static/<path:filename>", "/ops/ui/"}


def routes(app) -> list[str]:
    found = []
    for rule in app.url_map.iter_rules():
        if rule.rule in FILES:
            continue
        path = rule.rule.replace("<task_id:task_id>", "{id}")
        found += [f"{method} {path}" for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return found


def test_every_route_of_the_app_is_in_docs_api_md(app):
    text = API_DOC.read_text()
    missing = [route for route in routes(app) if f"`{route}`" not in text]
    assert not missing, f"docs/api.md does not name {missing}"


def test_the_check_sees_the_routes_users_reported_missing(app):
    assert {"GET /ops/recipes", "GET /readyz", "GET /metrics", "GET /"} <= set(routes(app))


@pytest.mark.parametrize("path", ["/", "/ops/"])
def test_the_servers_address_leads_to_the_dashboard(client, path):
    response = client.get(path)
    assert response.status_code == 302 and response.headers["Location"] == "/ops/ui"
    assert client.get("/ops", follow_redirects=True).request.path == "/ops/ui"
