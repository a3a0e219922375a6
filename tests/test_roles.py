"""Roles against every endpoint (read from the URL map), recipes that require a role, and the
credentials file: its reloads, a bad file, SIGHUP."""

from __future__ import annotations

import logging
import signal

import pytest
import requests

from app.auth.gate import requires
from app.credential_file import CredentialFile, CredentialFileError, parse_credentials
from app.recipes import parse_recipes
from app.roles import Role
from tests.support.api import ADMIN, live_env, make_settings
from tests.support.credentials import TOKENS, credentials_text, headers_of, write_credentials
from tests.test_auth import ENDPOINTS, PUBLIC, call

NEEDED = {Role.VIEWER: "viewer", Role.OPERATOR: "operator", Role.ADMIN: "admin"}


def required_roles():
    """(method, path, role) for every gated endpoint, from the views' own declarations."""
    from app import create_app

    app = create_app(make_settings())
    found = {}
    for rule in app.url_map.iter_rules():
        if rule.rule in PUBLIC:
            continue
        view = app.view_functions[rule.endpoint]
        path = rule.rule.replace("<task_id:task_id>", "1")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found[(method, path)] = getattr(view, "required_role", None)
    app.extensions["services"].executor.shutdown(grace=1)
    return found


ROLES = required_roles()


@pytest.fixture
def tokens_file(tmp_path):
    return write_credentials(tmp_path / "credentials.toml")


@pytest.fixture
def app_with_roles(make_app, tokens_file):
    return make_app(make_settings(tokens_file=str(tokens_file)))


def test_every_gated_endpoint_declares_its_role():
    assert set(ROLES) == set(ENDPOINTS)
    undeclared = [endpoint for endpoint, role in ROLES.items() if role is None]
    assert not undeclared
    # What the issue fixes: a viewer reads, an operator changes, an admin sees the service.
    assert ROLES[("GET", "/ops/tasks")] == Role.VIEWER
    assert ROLES[("POST", "/ops/tasks")] == Role.OPERATOR
    assert ROLES[("POST", "/ops/tasks/1/cancel")] == Role.OPERATOR
    assert ROLES[("POST", "/ops/stream_tokens")] == Role.VIEWER
    assert {ROLES[("GET", p)] for p in ("/metrics", "/ops/stats", "/ops/audit")} == {Role.ADMIN}


@pytest.mark.parametrize("name", sorted(TOKENS))
@pytest.mark.parametrize("method, path", ENDPOINTS)
def test_each_role_against_every_endpoint(app_with_roles, name, method, path):
    client = app_with_roles.test_client()
    admin = {"X-Admin-Token": ADMIN}
    assert client.post("/ops/tasks", json={"title": "one"}, headers=admin).status_code == 201
    role = TOKENS[name][0]
    response = call(client, method, path, headers_of(name))
    needed = ROLES[(method, path)]
    if role >= needed:
        assert response.status_code < 400 or response.status_code == 409, response.get_json()
    else:
        assert response.status_code == 403
        error = response.get_json()["error"]
        assert f"needs the {NEEDED[needed]} role" in error and name in error


def test_the_admin_token_is_the_admin(app_with_roles):
    answer = app_with_roles.test_client().get("/ops/whoami", headers={"X-Admin-Token": ADMIN})
    assert answer.get_json()["name"] == "admin" and answer.get_json()["role"] == "admin"


def test_a_token_of_the_file_is_refused_once_removed(app_with_roles, tokens_file):
    client = app_with_roles.test_client()
    assert client.get("/ops/tasks", headers=headers_of("vera")).status_code == 200
    write_credentials(tokens_file, {"otto": TOKENS["otto"]})
    app_with_roles.extensions["ops_auth"].file.reload_soon()
    assert client.get("/ops/tasks", headers=headers_of("vera")).status_code == 401
    assert client.get("/ops/tasks", headers=headers_of("otto")).status_code == 200


RECIPES = """
[recipes.deploy-prod]
description = "production deploy"
argv = ["true"]
role = "admin"

[recipes.build]
argv = ["true"]
"""


def test_a_recipe_that_requires_admin(make_app, tokens_file, tmp_path):
    book = parse_recipes(__import__("tomllib").loads(RECIPES), base=tmp_path)
    client = make_app(make_settings(tokens_file=str(tokens_file), recipes=book)).test_client()
    listed = {r["name"]: r["role"] for r in
              client.get("/ops/recipes", headers=headers_of("vera")).get_json()["recipes"]}
    assert listed == {"deploy-prod": "admin", "build": None}
    refused = client.post("/ops/tasks", json={"title": "ship", "recipe": "deploy-prod"},
                          headers=headers_of("otto"))
    assert refused.status_code == 403
    assert "'deploy-prod' needs the admin role; otto is operator" in refused.get_json()["error"]
    assert client.get("/ops/tasks", headers=headers_of("ada")).get_json()["tasks"] == []
    built = client.post("/ops/tasks", json={"title": "build", "recipe": "build"},
                        headers=headers_of("otto"))
    shipped = client.post("/ops/tasks", json={"title": "ship", "recipe": "deploy-prod"},
                          headers=headers_of("ada"))
    assert (built.status_code, shipped.status_code) == (201, 201)
    assert shipped.get_json()["created_by"] == "ada"


def test_a_recipe_role_must_be_a_role(tmp_path):
    with pytest.raises(Exception, match="a role is one of viewer, operator, admin"):
        parse_recipes(__import__("tomllib").loads(RECIPES.replace('"admin"', '"root"')),
                      base=tmp_path)


# -- the file ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("[[token]]\nname = 'a'\nrole = 'admin'\nsha256 = 'abc'", "64 hex digits"),
    ("[[token]]\nname = 'admin'\nrole = 'admin'\nsha256 = '" + "a" * 64 + "'",
     "SETTINGS_ADMIN_TOKEN's"),
    ("[[token]]\nname = 'a'\nrole = 'root'\nsha256 = '" + "a" * 64 + "'", "a role is one of"),
    ("[[token]]\nname = 'a'\nrole = 'viewer'\ntoken = 'plain'", "unknown key 'token'"),
    ("[[token]]\nname = 'a'\nrole = 'viewer'\nsha256 = '" + "a" * 64 + "'\n"
     "[[token]]\nname = 'b'\nrole = 'viewer'\nsha256 = '" + "a" * 64 + "'", "the same token"),
    ("[[user]]\nemail = 'x@y'\nrole = 'viewer'\n[[user]]\nemail = 'X@Y'\nrole = 'admin'",
     "listed twice"),
    ("[tokens]\nx = 1", "unknown table 'tokens'"),
    ("[[token]\n", "not valid TOML"),
])
def test_a_bad_file_says_what_is_wrong(text, message):
    with pytest.raises(CredentialFileError, match=message):
        parse_credentials(text)


def test_a_bad_file_stops_the_start(tmp_path):
    from app import ConfigError, Settings

    path = tmp_path / "credentials.toml"
    path.write_text("[[token]]\nname = 'a'\n")
    with pytest.raises(ConfigError, match="OPS_TOKENS_FILE: .*token #1: sha256 is required"):
        Settings.from_env({"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_TOKENS_FILE": str(path)})


def test_changes_are_read_and_a_bad_file_keeps_the_previous_set(tmp_path, clock, caplog):
    path = write_credentials(tmp_path / "credentials.toml", {"vera": TOKENS["vera"]})
    reloads = []
    credentials = CredentialFile(path, clock=clock, check_every=1.0,
                                 on_reload=lambda ok, detail: reloads.append((ok, detail)))
    viewer, operator = TOKENS["vera"][1], TOKENS["otto"][1]
    assert credentials.current().by_token(viewer).role == Role.VIEWER
    write_credentials(path, {"otto": TOKENS["otto"]})
    assert credentials.current().by_token(viewer) is not None  # not looked at yet
    clock.advance(1.0)
    assert credentials.current().by_token(viewer) is None
    assert credentials.current().by_token(operator).name == "otto"
    path.write_text("[[token]]\nname = 'broken'\n")
    clock.advance(1.0)
    with caplog.at_level(logging.ERROR, logger="app.credential_file"):
        for _ in range(3):
            clock.advance(1.0)
            assert credentials.current().by_token(operator).name == "otto"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "previous credentials stay in force" in errors[0].getMessage()
    assert [ok for ok, _ in reloads] == [True, False]
    assert reloads[0][1] == {"tokens": 1, "users": 0}
    assert "sha256 is required" in reloads[1][1]["error"]


def test_requires_marks_the_view():
    @requires(Role.OPERATOR)
    def view():
        return "ok"
    assert view.required_role == Role.OPERATOR


@pytest.mark.live
def test_a_live_server_reads_changes_and_sighup(tmp_path):
    from tests.support.live import GunicornServer
    from tests.support.processes import wait_until

    path = write_credentials(tmp_path / "credentials.toml", {"vera": TOKENS["vera"]})
    with GunicornServer(live_env(OPS_TOKENS_FILE=str(path), DEV_LOCAL_LLM="1")) as server:
        def status(name):
            return requests.get(f"{server.url}/ops/tasks", headers=headers_of(name),
                                timeout=10).status_code
        assert (status("vera"), status("otto")) == (200, 401)
        path.write_text(credentials_text({"otto": TOKENS["otto"]}))
        wait_until(lambda: status("otto") == 200, timeout=10)
        assert status("vera") == 401
        # SIGHUP to the worker re-reads at once and leaves the worker (and its tasks) alive.
        worker = server.worker_pids()[0]
        server.admin.create("survives")
        path.write_text(credentials_text({"vera": TOKENS["vera"]}))
        import os
        os.kill(worker, signal.SIGHUP)
        wait_until(lambda: status("vera") == 200, timeout=10)
        assert server.worker_pids() == [worker]
        audit = server.admin.get("/ops/audit", params={"action": "credentials.reload"}).json()
        assert [r["outcome"] for r in audit["records"]] == ["ok", "ok"]
