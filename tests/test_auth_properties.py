"""Arbitrary credentials on every route that reads one: never a 5xx, always 401.

Each credential is checked where it travels: a stream token in ``?token=``, the admin token in
``X-Admin-Token`` (every gated endpoint) and, in dev mode, ``?admin_token=``, and the metrics
token in ``Authorization: Bearer``. Header values are what a server hands the app (bytes read
as Latin-1) or any text; query values are any bytes, percent-encoded.
"""

from __future__ import annotations

from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app import create_app
from tests.support.api import ADMIN, make_settings

METRICS_TOKEN = "metrics-token-0123456789"
PROPERTY = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

# Text as a client may send it, then as the server sees it: no CR, LF or NUL in a header.
_wire_text = st.one_of(
    st.text(), st.text().map(lambda s: s.encode().decode("latin-1")),
    st.binary().map(lambda b: b.decode("latin-1")))
header_values = _wire_text.filter(lambda s: not set(s) & {"\r", "\n", "\0"})
_piece = st.one_of(st.text(max_size=20), st.integers(-1, 2**70).map(str))
# Shaped like a token (v1.<task>.<expires>.<signature>), so that the signature is compared.
token_like = st.builds(lambda task, expires, signature: f"v1.{task}.{expires}.{signature}",
                       _piece, _piece, st.text(max_size=60))
tokens = st.one_of(st.text(), token_like)


@pytest.fixture(scope="module")
def app():
    app = create_app(make_settings(metrics_token=METRICS_TOKEN))
    yield app
    app.extensions["services"].executor.shutdown(grace=5)


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def task_ids(client):
    """Two tasks: the one streamed, and another one (a token for it is a 403)."""
    return [client.post("/ops/tasks", json={"title": title}, headers={"X-Admin-Token": ADMIN})
            .get_json()["id"] for title in ("streamed", "other")]


@pytest.fixture(scope="module")
def gated(app, client):
    """Every (method, path) that answers 401 without a credential, read from the URL map."""
    found = []
    for rule in app.url_map.iter_rules():
        path = rule.rule.replace("<task_id:task_id>", "1")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if client.open(path, method=method).status_code == 401:
                found.append((method, path))
    assert ("GET", "/ops/tasks/1/stream") in found and ("GET", "/metrics") in found
    return found


def refused(response) -> bool:
    return response.status_code == 401 and bool(response.get_json()["error"])


def query(name: str, value: str | bytes) -> str:
    """``name=value``, the value's bytes (UTF-8 for text) percent-encoded."""
    raw = value.encode() if isinstance(value, str) else value
    return f"{name}={quote_from_bytes(raw, safe='')}"


@PROPERTY
@given(token=st.one_of(tokens, st.binary()))
@example(token="v1.1.99999999999.\u00e9")
@example(token=b"v1.1.99999999999.\xc3\xa9")
def test_any_stream_token_is_401(client, task_ids, token):
    response = client.get(f"/ops/tasks/{task_ids[0]}/stream", query_string=query("token", token))
    assert refused(response), response.get_data(as_text=True)


@PROPERTY
@given(data=st.data())
def test_a_changed_real_token_is_401_and_another_tasks_403(app, client, task_ids, data):
    token, _ = app.extensions["services"].tokens.mint(task_ids[1])
    at = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.text(min_size=1, max_size=3))
    changed = token[:at] + replacement + token[at + 1:]
    response = client.get(f"/ops/tasks/{task_ids[0]}/stream",
                          query_string=query("token", changed))
    if changed == token:
        assert response.status_code == 403
    else:
        assert refused(response), (changed, response.get_data(as_text=True))


@PROPERTY
@given(value=header_values, data=st.data())
def test_any_admin_header_is_401_everywhere(client, gated, task_ids, value, data):
    method, path = data.draw(st.sampled_from(gated))
    response = client.open(path, method=method, headers={"X-Admin-Token": value})
    assert refused(response), (method, path, response.get_data(as_text=True))


@PROPERTY
@given(value=st.one_of(st.text(), st.binary()))
def test_any_query_admin_token_is_401_in_dev_mode(client, task_ids, value):
    response = client.get(f"/ops/tasks/{task_ids[0]}/stream",
                          query_string=query("admin_token", value))
    assert refused(response), response.get_data(as_text=True)


@PROPERTY
@given(value=header_values, scheme=st.sampled_from(["Bearer ", "bearer ", "", "Basic "]))
def test_any_metrics_bearer_token_is_401(client, value, scheme):
    response = client.get("/metrics", headers={"Authorization": scheme + value})
    assert refused(response), response.get_data(as_text=True)


def test_the_reported_token_is_401(client, task_ids):
    """The reported request: a signature with one non-ASCII character was a 500."""
    response = client.get(f"/ops/tasks/{task_ids[0]}/stream?token=v1.{task_ids[0]}."
                          "99999999999.%C3%A9")
    assert response.status_code == 401
