"""The API's description (docs/openapi.yaml): valid, complete, served, and true to the app.

The live fuzz against it is tests/test_openapi_fuzz.py; the cases here are the fast ones,
including what that fuzz once found (each now answers as the description says).
"""

from __future__ import annotations

import json

import pytest
import schemathesis
import yaml
from werkzeug.test import TestResponse

from app.http import openapi
from tests.support.api import ADMIN
from tests.support.processes import ROOT, wait_until

SPEC = ROOT / "docs" / "openapi.yaml"
H = {"X-Admin-Token": ADMIN}
METHODS = {"get", "post", "put", "patch", "delete"}
# Files, not API: the dashboard's scripts and styles, and Flask's default static route.
UNDESCRIBED = {"/static/<path:filename>", "/ops/ui/static/<path:filename>",
               "/ops/ui/"}  # the same page as /ops/ui


@pytest.fixture(scope="module")
def document():
    return yaml.safe_load(SPEC.read_text())


@pytest.fixture(scope="module")
def described(document):
    return schemathesis.openapi.from_dict(document)


def conforms(document, described, path: str, method: str, response) -> None:
    """The answer's status is one the operation lists, and the answer matches it."""
    listed = document["paths"][path][method.lower()]["responses"]
    assert str(response.status_code) in listed, (
        f"{method} {path} answered {response.status_code}, not in {sorted(listed)}: "
        f"{response.get_data(as_text=True)[:200]}")
    described[path][method.upper()].validate_response(response)


def test_the_description_is_valid_openapi_3_1(document, described):
    assert document["openapi"].startswith("3.1.")
    described.validate()  # against the OpenAPI 3.1 meta-schema


def test_every_route_is_described_and_nothing_else(app, document):
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule in UNDESCRIBED:
            continue
        path = rule.rule.replace("<task_id:task_id>", "{task_id}")
        served |= {(m.lower(), path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    described = {(method, path) for path, item in document["paths"].items()
                 for method in item if method in METHODS}
    assert served == described


def test_the_description_is_served_as_json_without_a_token(client, document):
    response = client.get("/ops/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == json.loads(json.dumps(document))


def test_a_missing_description_is_a_clear_404(client, monkeypatch, tmp_path):
    monkeypatch.setattr(openapi, "SPEC_PATH", tmp_path / "openapi.yaml")
    response = client.get("/ops/openapi.json")
    assert response.status_code == 404
    assert "docs/openapi.yaml" in response.get_json()["error"]


def test_a_broken_description_is_a_clear_500(client, monkeypatch, tmp_path):
    broken = tmp_path / "openapi.yaml"
    broken.write_text("openapi: [3.1.0\n")
    monkeypatch.setattr(openapi, "SPEC_PATH", broken)
    response = client.get("/ops/openapi.json")
    assert response.status_code == 500
    assert "not valid YAML" in response.get_json()["error"]


def test_an_answer_that_strays_from_the_description_is_caught(admin, document, described):
    """The validation the fuzz relies on has teeth: one unknown field fails it."""
    task_id = admin.create()["id"]
    real = admin.get(f"/ops/tasks/{task_id}")
    conforms(document, described, "/ops/tasks/{task_id}", "GET", real)
    strayed = TestResponse(json.dumps({**real.get_json(), "owner": "x"}), 200,
                           {"Content-Type": "application/json"}, request=real.request)
    with pytest.raises(Exception, match="owner"):
        described["/ops/tasks/{task_id}"]["GET"].validate_response(strayed)



@pytest.mark.parametrize("path, method, kwargs, status", [
    # A lone surrogate parses but is no text: stored, it broke the task's stream for good.
    ("/ops/tasks", "POST", {"data": '{"title": "x", "body": "b\\udc00dy"}',
                            "content_type": "application/json"}, 400),
    ("/ops/tasks", "POST", {"data": '{"\\ud800": 1}', "content_type": "application/json"}, 400),
    # ... or from bytes that json.loads decodes leniently: UTF-8 0xED 0xA0 0x80, or UTF-16.
    ("/ops/tasks", "POST", {"data": b'{"title": "x\xed\xa0\x80"}',
                            "content_type": "application/json"}, 400),
    ("/ops/tasks", "POST",
     {"data": '{"title": "x?"}'.encode("utf-16-le").replace(b"?\0", b"\0\xd8"),
      "content_type": "application/json"}, 400),
    # Lengths and characters are checked as sent (the description's maxLength and pattern).
    ("/ops/tasks", "POST", {"json": {"title": " " + "x" * 200}}, 422),
    ("/ops/tasks", "POST", {"json": {"title": "trailing newline\n"}}, 422),
    ("/ops/tasks", "POST", {"json": {"title": "\t" + "x" * 199}}, 201),
    # 7.0 is the integer 7 in JSON and in JSON Schema.
    ("/ops/stream_tokens", "POST", {"json": {"task_id": 1.0}}, 200),
    ("/ops/stream_tokens", "POST", {"json": {"task_id": 1.5}}, 422),
    # The query is checked even when the header wins; an empty header is no header.
    ("/ops/tasks/{task_id}/stream", "GET",
     {"query_string": "last_event_id=-1", "headers": {"Last-Event-ID": "2"}}, 422),
    ("/ops/tasks/{task_id}/stream", "GET",
     {"query_string": "last_event_id=-1", "headers": {"Last-Event-ID": ""}}, 422),
    ("/ops/tasks/{task_id}/stream", "GET", {"headers": {"Last-Event-ID": ""}}, 200),
    ("/ops/tasks", "GET", {"query_string": "limit=&status=&cursor="}, 200),
])
def test_answers_once_found_by_the_fuzz(admin, document, described, path, method, kwargs,
                                        status):
    task_id = admin.create()["id"]
    headers = {**H, **kwargs.pop("headers", {})}
    response = admin.client.open(path.format(task_id=task_id), method=method, headers=headers,
                                 **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    conforms(document, described, path, method, response)


def test_other_methods_on_the_dashboard_page_are_405(client):
    for path in ("/ops/ui", "/ops/ui/"):
        response = client.post(path)
        assert response.status_code == 405 and "GET" in response.headers["Allow"]


def test_relaunch_and_idempotency_answers_match_the_description(admin, document, described):
    """The answers of a relaunch and of a replayed or refused Idempotency-Key, judged by the
    description (the fuzz rarely reuses a key or finds a task to relaunch)."""
    def check(path, response, status):
        assert response.status_code == status, response.get_data(as_text=True)
        conforms(document, described, path, "POST", response)

    keyed = {**H, "Idempotency-Key": "describe-1"}
    first = admin.client.post("/ops/tasks", json={"title": "x"}, headers=keyed)
    check("/ops/tasks", first, 201)
    check("/ops/tasks", admin.client.post("/ops/tasks", json={"title": "x"}, headers=keyed), 200)
    check("/ops/tasks", admin.client.post("/ops/tasks", json={"title": "y"}, headers=keyed), 422)
    check("/ops/tasks", admin.client.post("/ops/tasks", json={"title": "x"},
                                          headers={**H, "Idempotency-Key": "a b"}), 422)
    task_id = first.get_json()["id"]
    relaunch = "/ops/tasks/{task_id}/relaunch"
    path = f"/ops/tasks/{task_id}/relaunch"
    wait_until(lambda: admin.get(f"/ops/tasks/{task_id}").get_json()["status"] == "done",
               timeout=20)
    again = admin.client.post(path, headers=keyed | {"Idempotency-Key": "describe-2"})
    check(relaunch, again, 201)
    check(relaunch, admin.client.post(path, headers=keyed | {"Idempotency-Key": "describe-2"}),
          200)
    check(relaunch, admin.client.post(path, json={"title": "z", "params": None}, headers=H), 201)
    check(relaunch, admin.client.post(path, json={"recipe": "x"}, headers=H), 422)
    check(relaunch, admin.client.post(path, data="x", content_type="text/plain", headers=H), 415)
    check(relaunch, admin.client.post("/ops/tasks/999/relaunch", headers=H), 404)


def test_concurrency_group_answers_match_the_description(make_app, document, described,
                                                         tmp_path):
    from app.recipes import parse_recipes
    from tests.support.api import Admin, make_settings

    book = parse_recipes({"recipes": {"deploy": {
        "argv": ["/bin/true", "{service}"], "concurrency": "deploy-{service}",
        "concurrency_policy": "reject", "params": {"service": {"pattern": "[a-z]+"}}}}},
        base=tmp_path)
    admin = Admin(make_app(make_settings(recipes=book, dev_tick_seconds=5)).test_client())
    request = {"title": "Deploy", "recipe": "deploy", "params": {"service": "api"}}
    created = admin.post("/ops/tasks", json=request)
    conforms(document, described, "/ops/tasks", "POST", created)
    assert created.get_json()["concurrency_group"] == "deploy-api"
    busy = admin.post("/ops/tasks", json=request)
    assert busy.status_code == 409, busy.get_json()
    conforms(document, described, "/ops/tasks", "POST", busy)
    task = admin.get(f"/ops/tasks/{created.get_json()['id']}")
    conforms(document, described, "/ops/tasks/{task_id}", "GET", task)
    conforms(document, described, "/ops/recipes", "GET", admin.get("/ops/recipes"))
