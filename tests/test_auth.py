"""The admin gate and stream tokens."""

from __future__ import annotations

import re

import pytest

from app.auth.stream_tokens import StreamTokens, TokenForOtherTask, TokenInvalid
from tests.support.api import ADMIN, SECRET
from tests.support.processes import ROOT

# A request that would succeed for each endpoint that needs a body; the rest need none.
BODIES = {("POST", "/ops/tasks"): {"title": "x"}, ("POST", "/ops/stream_tokens"): {"task_id": 1}}
PUBLIC = {"/healthz", "/readyz",
          "/ops/ui", "/ops/ui/", "/ops/ui/static/<path:filename>",  # the dashboard: no data
          "/", "/ops/",  # redirects to the dashboard
          "/ops/openapi.json"}  # the API's description: no secret in it


def gated_endpoints():
    """Every (method, path) the app serves except the public ones, read from its URL map, so
    that a new endpoint is covered without anyone remembering to list it."""
    from app import create_app
    from tests.support.api import make_settings

    app = create_app(make_settings())
    found = []
    for rule in app.url_map.iter_rules():
        if rule.rule in PUBLIC:
            continue
        path = rule.rule.replace("<task_id:task_id>", "1")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((method, path))
    app.extensions["services"].executor.shutdown(grace=1)
    return found


ENDPOINTS = gated_endpoints()


def call(client, method, path, headers=None, query=""):
    body = BODIES.get((method, path))
    return client.open(path + query, method=method, headers=headers or {},
                       **({"json": body} if body is not None else {}))


@pytest.fixture
def one_task(admin):
    return admin.create("exists")["id"]


@pytest.mark.parametrize("method, path", ENDPOINTS)
@pytest.mark.parametrize("headers, query", [
    ({}, ""),                                          # no token
    ({"X-Admin-Token": "wrong"}, ""),                  # wrong token
    ({"X-Admin-Token": ""}, ""),
    ({"Authorization": f"Bearer {ADMIN}"}, ""),        # right token, wrong place
    ({"Cookie": f"admin_token={ADMIN}"}, ""),
    ({}, f"?token={ADMIN}"),
], ids=["none", "wrong", "empty", "bearer", "cookie", "as-stream-token"])
def test_every_endpoint_rejects_missing_or_misplaced_admin_token(client, one_task, method,
                                                                 path, headers, query):
    response = call(client, method, path, headers, query)
    assert response.status_code == 401
    error = response.get_json()["error"]
    assert error and ADMIN not in error


@pytest.mark.parametrize("method, path", ENDPOINTS)
def test_query_admin_token_is_refused_outside_dev_mode(admin_for, method, path):
    admin = admin_for(dev_mode=False)
    response = call(admin.client, method, path, query=f"?admin_token={ADMIN}")
    assert response.status_code == 401


@pytest.mark.parametrize("method, path", ENDPOINTS)
def test_stream_tokens_open_nothing_but_their_own_stream(admin, client, one_task, method, path):
    other = admin.create("other")["id"]
    token = admin.post("/ops/stream_tokens", json={"task_id": other}).get_json()["token"]
    response = call(client, method, path, query=f"?token={token}")
    # A stream token opens its own task's stream and output; for another task those are 403.
    own = (f"/ops/tasks/{one_task}/stream", f"/ops/tasks/{one_task}/log")
    expected = 403 if path in own else 401
    assert response.status_code == expected


@pytest.mark.parametrize("method, path", ENDPOINTS)
def test_every_endpoint_admits_the_admin_token(admin, one_task, method, path):
    response = call(admin.client, method, path, admin.headers)
    assert response.status_code < 400 or response.status_code == 409  # cancel of a done task


def test_query_admin_token_is_only_for_the_stream_in_dev_mode(client, one_task):
    assert client.get(f"/ops/tasks?admin_token={ADMIN}").status_code == 401
    assert client.get(f"/ops/tasks/{one_task}/stream?admin_token={ADMIN}").status_code == 200
    assert client.get(f"/ops/tasks/{one_task}/stream?admin_token=nope").status_code == 401


def test_query_admin_token_outside_dev_mode_points_to_stream_tokens(admin_for):
    admin = admin_for(dev_mode=False)
    response = admin.client.get(f"/ops/tasks/1/stream?admin_token={ADMIN}")
    assert response.status_code == 401
    assert "/ops/stream_tokens" in response.get_json()["error"]


def test_stream_token_flow(admin, client, one_task):
    response = admin.post("/ops/stream_tokens", json={"task_id": one_task})
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["expires_at"].endswith("Z") and answer["token"]
    stream = client.get(f"/ops/tasks/{one_task}/stream?token={answer['token']}")
    assert stream.status_code == 200 and stream.mimetype == "text/event-stream"


def test_stream_token_for_another_task_is_403(admin, client, one_task):
    other = admin.create("other")["id"]
    token = admin.post("/ops/stream_tokens", json={"task_id": other}).get_json()["token"]
    response = client.get(f"/ops/tasks/{one_task}/stream?token={token}")
    assert response.status_code == 403 and f"task {other}" in response.get_json()["error"]


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature
    lambda t: t.replace("v1.", "v2.", 1),
    lambda t: "garbage",
    lambda t: "v1.1.99999999999.c2ln",
    lambda t: ".".join(t.split(".")[:1] + ["1", str(int(t.split(".")[2]) + 1000)] +
                       t.split(".")[3:]),  # later expiry, same signature
])
def test_tampered_or_malformed_stream_token_is_401(admin, client, one_task, mangle):
    token = admin.post("/ops/stream_tokens", json={"task_id": one_task}).get_json()["token"]
    response = client.get(f"/ops/tasks/{one_task}/stream?token={mangle(token)}")
    assert response.status_code == 401


def test_expired_stream_token_is_401(client, one_task):
    past = StreamTokens([SECRET], ttl=60, clock=lambda: 1_000_000.0)
    token, _ = past.mint(one_task)
    response = client.get(f"/ops/tasks/{one_task}/stream?token={token}")
    assert response.status_code == 401 and "expired" in response.get_json()["error"]


@pytest.mark.parametrize("body, status", [
    ({"task_id": 999}, 404), ({"task_id": "1"}, 422), ({"task_id": True}, 422),
    ({"task_id": 0}, 422), ({}, 422), ({"task_id": 1, "x": 2}, 422),
])
def test_stream_token_request_validation(admin, one_task, body, status):
    response = admin.post("/ops/stream_tokens", json=body)
    assert response.status_code == status and response.get_json()["error"]


def test_tokens_expire_and_rotate(clock):
    old = StreamTokens(["old-secret-0123456789"], ttl=300, clock=clock)
    rotated = StreamTokens(["new-secret-0123456789", "old-secret-0123456789"], ttl=300,
                           clock=clock)
    token, expires_at = old.mint(7)
    assert expires_at.timestamp() == clock() + 300
    rotated.verify(token, 7)  # old tokens still verify after rotation
    new_token, _ = rotated.mint(7)
    with pytest.raises(TokenInvalid):
        old.verify(new_token, 7)  # the new secret signs
    with pytest.raises(TokenForOtherTask):
        rotated.verify(token, 8)
    clock.advance(299)
    rotated.verify(token, 7)
    clock.advance(1)
    with pytest.raises(TokenInvalid, match="expired"):
        rotated.verify(token, 7)


def test_the_public_endpoints_are_those_docs_security_md_lists(client):
    """Every route that answers without a credential, found by calling each one of the URL
    map without any, is listed in docs/security.md, and nothing else is."""
    text = (ROOT / "docs" / "security.md").read_text()
    bullet = re.search(r"^- \*\*Anyone else on the network\*\*.*?(?=\n- |\n\n)", text,
                       re.M | re.S).group(0)
    bullet = bullet.split("Every other endpoint")[0]
    documented = set(re.findall(r"`(/[^`]*)`", bullet))
    samples = {"<task_id:task_id>": "1", "<path:filename>": "main.js"}
    answering = set()
    for rule in client.application.url_map.iter_rules():
        path = rule.rule
        for placeholder, value in samples.items():
            path = path.replace(placeholder, value)
        assert "<" not in path, f"no sample value for {rule.rule}"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            with call(client, method, path) as response:
                if response.status_code != 401:
                    answering.add(rule.rule)
    assert answering == documented
    assert documented <= PUBLIC  # the tests above hold every other route to the admin token
