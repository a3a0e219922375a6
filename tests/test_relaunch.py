"""``POST /ops/tasks/{id}/relaunch``: a finished task run again, as it was or with a new title
and parameters, checked as a create is; who may, and what the new task records."""

from __future__ import annotations

import tomllib

import pytest

from app.recipes import parse_recipes
from tests.support.api import make_settings
from tests.support.credentials import headers_of, write_credentials
from tests.support.processes import wait_until

RECIPES = """
[recipes.deploy]
argv = ["deploy.sh", "{ref}", "{env}"]
[recipes.deploy.params.ref]
pattern = "[a-z0-9.]+"
[recipes.deploy.params.env]
pattern = "staging|prod"

[recipes.ship]
argv = ["true"]
role = "admin"
"""
DEPLOY = {"title": "Deploy api", "body": "after the v2 migration", "recipe": "deploy",
          "params": {"ref": "v1.2", "env": "staging"}}
TERMINAL = {"done", "failed", "canceled"}


@pytest.fixture
def make_roles_app(make_app, tmp_path):
    """An app in dev mode (recipes checked, not run) with the three named tokens."""
    book = parse_recipes(tomllib.loads(RECIPES), base=tmp_path)
    tokens = write_credentials(tmp_path / "credentials.toml")
    return lambda **overrides: make_app(make_settings(tokens_file=str(tokens), recipes=book,
                                                      **overrides))


@pytest.fixture
def client(make_roles_app):
    return make_roles_app().test_client()


def post(client, path: str, who: str = "otto", **kwargs):
    return client.post(path, headers={**headers_of(who), **kwargs.pop("headers", {})}, **kwargs)


def finished(client, task_id: int) -> dict:
    def read():
        task = client.get(f"/ops/tasks/{task_id}", headers=headers_of("vera")).get_json()
        return task if task["status"] in TERMINAL else None
    return wait_until(read, timeout=20, message=f"task {task_id} to end")


def created_task(client, who: str = "ada", **fields) -> dict:
    response = post(client, "/ops/tasks", who, json={**DEPLOY, **fields})
    assert response.status_code == 201, response.get_json()
    return finished(client, response.get_json()["id"])


def task_count(client) -> int:
    return len(client.get("/ops/tasks", headers=headers_of("vera")).get_json()["tasks"])


def test_a_relaunch_copies_the_task_and_names_its_source(client):
    source = created_task(client)
    response = post(client, f"/ops/tasks/{source['id']}/relaunch")
    assert response.status_code == 201, response.get_json()
    task = response.get_json()
    assert task["id"] != source["id"]
    assert response.headers["Location"] == f"/ops/tasks/{task['id']}"
    assert task["stream_url"] == f"/ops/tasks/{task['id']}/stream"
    assert task["stream_token"].startswith(f"v1.{task['id']}.")
    for field in ("title", "body", "recipe", "params", "runner"):
        assert task[field] == source[field], field
    assert (task["relaunched_from"], task["created_by"]) == (source["id"], "otto")
    assert source["created_by"] == "ada"
    store = client.application.extensions["services"].store
    created = store.events_after(task["id"], 0, 10)[0]
    assert created.kind == "created"
    assert created.data["relaunched_from"] == source["id"]
    assert created.data["params"] == DEPLOY["params"]
    shown = client.get(f"/ops/tasks/{task['id']}", headers=headers_of("vera")).get_json()
    assert shown["relaunched_from"] == source["id"]
    assert "relaunched_from" not in source


@pytest.mark.parametrize("kwargs", [
    {},  # no body at all
    {"data": b"", "content_type": "application/json"},
    {"json": {}},
    {"json": {"title": None, "params": None}},
])
def test_an_empty_body_keeps_everything(client, kwargs):
    source = created_task(client)
    response = post(client, f"/ops/tasks/{source['id']}/relaunch", **kwargs)
    assert response.status_code == 201, response.get_json()
    assert (response.get_json()["title"], response.get_json()["params"]) == (
        source["title"], source["params"])


def test_a_relaunch_of_a_relaunch_names_its_own_source(client):
    first = created_task(client)
    second = finished(client, post(client, f"/ops/tasks/{first['id']}/relaunch").get_json()["id"])
    third = post(client, f"/ops/tasks/{second['id']}/relaunch").get_json()
    assert third["relaunched_from"] == second["id"]


def test_the_title_and_parameters_can_be_changed(client):
    source = created_task(client)
    response = post(client, f"/ops/tasks/{source['id']}/relaunch",
                    json={"title": "  Deploy api to prod ", "params": {"env": "prod"}})
    assert response.status_code == 201, response.get_json()
    task = response.get_json()
    assert task["title"] == "Deploy api to prod"  # stripped, as a create's
    assert task["params"] == {"ref": "v1.2", "env": "prod"}  # by name; the rest kept
    assert task["body"] == source["body"] and task["recipe"] == "deploy"


@pytest.mark.parametrize("body, status, message", [
    ({"title": "   "}, 422, "title must not be blank"),
    ({"title": "a\nb"}, 422, "title must not contain control characters"),
    ({"title": 7}, 422, "title must be a string"),
    ({"title": "x" * 201}, 422, "title is too long (201 characters, at most 200)"),
    ({"params": {"env": "dev"}}, 422, "parameter env does not match its pattern"),
    ({"params": {"region": "eu"}}, 422, "recipe deploy has no parameter(s) region"),
    ({"params": "env=prod"}, 422, "params must be a JSON object of strings"),
    ({"body": "new notes"}, 422, "unknown field(s): body; allowed: params, title"),
    ({"recipe": "ship"}, 422, "unknown field(s): recipe"),
    ([], 422, "the body must be a JSON object"),
])
def test_overrides_are_checked_as_a_create(client, body, status, message):
    source = created_task(client)
    before = task_count(client)
    response = post(client, f"/ops/tasks/{source['id']}/relaunch", json=body)
    assert response.status_code == status, response.get_json()
    assert message in response.get_json()["error"]
    assert task_count(client) == before  # nothing was started


def test_a_malformed_body_or_another_type_is_refused(client):
    source = created_task(client)
    path = f"/ops/tasks/{source['id']}/relaunch"
    assert post(client, path, data=b"{", content_type="application/json").status_code == 400
    assert post(client, path, data=b"title=x", content_type="text/plain").status_code == 415


def test_parameters_need_a_recipe(client):
    response = post(client, "/ops/tasks", json={"title": "plain"})
    source = finished(client, response.get_json()["id"])
    refused = post(client, f"/ops/tasks/{source['id']}/relaunch", json={"params": {"a": "b"}})
    assert refused.status_code == 422
    assert refused.get_json()["error"] == 'params needs a "recipe" to go with'
    again = post(client, f"/ops/tasks/{source['id']}/relaunch")
    assert again.status_code == 201 and "recipe" not in again.get_json()


def test_the_recipes_role_is_checked_for_the_relauncher(client):
    source = created_task(client, "ada", recipe="ship", params=None, title="Ship")
    refused = post(client, f"/ops/tasks/{source['id']}/relaunch", "otto")
    assert refused.status_code == 403
    assert "'ship' needs the admin role; otto is operator" in refused.get_json()["error"]
    allowed = post(client, f"/ops/tasks/{source['id']}/relaunch", "ada")
    assert allowed.status_code == 201 and allowed.get_json()["created_by"] == "ada"


def test_a_viewer_may_not_relaunch(client):
    source = created_task(client)
    refused = post(client, f"/ops/tasks/{source['id']}/relaunch", "vera")
    assert refused.status_code == 403
    assert "needs the operator role; vera is viewer" in refused.get_json()["error"]
    anonymous = client.post(f"/ops/tasks/{source['id']}/relaunch")
    assert anonymous.status_code == 401


def test_a_queued_or_running_task_is_409_and_an_unknown_one_404(make_roles_app):
    client = make_roles_app(dev_tick_seconds=30, workers=1).test_client()
    running = post(client, "/ops/tasks", json={"title": "long"}).get_json()["id"]
    queued = post(client, "/ops/tasks", json={"title": "waits"}).get_json()["id"]
    for task_id in (running, queued):
        refused = post(client, f"/ops/tasks/{task_id}/relaunch")
        assert refused.status_code == 409
        assert refused.get_json()["error"] == (
            f"task {task_id} is still running: cancel it or wait for it to end")
        assert refused.get_json()["status"] in ("queued", "running")
    assert task_count(client) == 2
    post(client, f"/ops/tasks/{queued}/cancel")
    canceled = post(client, f"/ops/tasks/{queued}/relaunch")  # ended: it may run again
    assert canceled.status_code == 201, canceled.get_json()
    missing = post(client, "/ops/tasks/999/relaunch")
    assert missing.status_code == 404 and missing.get_json()["error"] == "task 999 not found"


def test_the_audit_trail_records_the_relaunch_with_the_new_task(client):
    source = created_task(client)
    task = post(client, f"/ops/tasks/{source['id']}/relaunch").get_json()
    post(client, f"/ops/tasks/{source['id']}/relaunch", "vera")
    records = client.get("/ops/audit", query_string={"action": "task.relaunch"},
                         headers=headers_of("ada")).get_json()["records"]
    assert [(r["actor"], r["outcome"], r["task_id"]) for r in records] == [
        ("vera", "denied", source["id"]), ("otto", "ok", task["id"])]
