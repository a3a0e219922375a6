"""Choosing the runner, checking recipe requests, ``GET /ops/recipes`` and the runner settings."""

from __future__ import annotations

import pytest

from app import create_app
from app.config import ConfigError, Settings
from app.recipes import load_recipes
from tests.support.api import ADMIN, Admin, make_settings
from tests.support.runners import RECIPES, Tasks

BOOK = load_recipes(RECIPES)
LLM = {"llm_base_url": "http://127.0.0.1:9/v1", "llm_model": "m", "llm_api_key": "sk-hidden"}


@pytest.fixture
def make_admin():
    apps = []

    def make(**overrides) -> Admin:
        app = create_app(make_settings(**{"dev_mode": False, **overrides}))
        apps.append(app)
        return Admin(app.test_client())

    yield make
    for app in apps:
        app.extensions["services"].executor.shutdown(grace=5)


def refused(admin, status, body):
    response = admin.post("/ops/tasks", json={"title": "Deploy", **body})
    assert response.status_code == status, response.get_json()
    assert admin.get("/ops/tasks").get_json()["tasks"] == []  # nothing was started
    return response.get_json()["error"]


@pytest.mark.parametrize("body, message", [
    ({"recipe": "ship"}, "unknown recipe 'ship'; known recipes: lines, gate,"),
    ({"recipe": "lines", "params": {"count": "1"}}, "recipe lines needs parameter(s) code"),
    ({"recipe": "lines"}, "recipe lines needs parameter(s) count, code"),
    ({"recipe": "sleep", "params": {"count": "1"}},
     "recipe sleep has no parameter(s) count; its parameters: none"),
    ({"recipe": "lines", "params": {"count": "1; reboot", "code": "0"}},
     "parameter count does not match its pattern '[0-9]{1,5}': got '1; reboot'"),
    ({"recipe": "lines", "params": {"count": 1, "code": "0"}}, "parameter count must be a string"),
    ({"recipe": "lines", "params": "count=1"}, "params must be a JSON object of strings"),
    ({"recipe": ["lines"]}, "recipe must be a string"),
    ({"params": {"count": "1"}}, 'params needs a "recipe" to go with'),
])
def test_a_bad_recipe_request_is_422_and_starts_nothing(make_admin, body, message):
    assert refused(make_admin(recipes=BOOK), 422, body).startswith(message)


def test_a_recipe_task_shows_its_runner_recipe_and_params(make_admin):
    admin = make_admin(recipes=BOOK)
    created = admin.create("Deploy", recipe="lines", params={"count": "1", "code": "0"})
    shown = admin.get(f"/ops/tasks/{created['id']}").get_json()
    assert (shown["runner"], shown["recipe"], shown["params"]) == (
        "recipe", "lines", {"count": "1", "code": "0"})


def test_dev_mode_runs_the_dev_runner_even_for_a_recipe(make_admin):
    admin = make_admin(dev_mode=True, recipes=BOOK)
    tasks = Tasks(admin, admin.client.application)
    task_id = tasks.create(recipe="lines", params={"count": "1", "code": "0"})
    task = tasks.wait_finished(task_id)
    assert (task["runner"], task["recipe"], task["status"]) == ("dev", "lines", "done")
    assert [e["kind"] for e in tasks.events(task_id)].count("tick") == 4
    assert refused(make_admin(dev_mode=True, recipes=BOOK), 422,
                   {"recipe": "ship"}).startswith("unknown recipe")


def test_without_a_recipe_the_llm_runner_takes_the_task(make_admin):
    admin = make_admin(recipes=BOOK, **LLM)
    created = admin.create("Explain the outage")
    assert (created["runner"], created["model"]) == ("llm", "m")


@pytest.mark.parametrize("settings, body, status, message", [
    ({}, {}, 503, "no runner is configured: set OPS_RECIPES (command recipes), "
                  "OPS_LLM_BASE_URL and OPS_LLM_MODEL"),
    ({"recipes": BOOK}, {}, 422, 'this server runs recipes only: name one in "recipe"'),
    (LLM, {"recipe": "lines"}, 503, "recipes are not configured: set OPS_RECIPES"),
])
def test_what_cannot_run_says_what_to_configure(make_admin, settings, body, status, message):
    assert refused(make_admin(**settings), status, body).startswith(message)


def test_recipes_are_listed_for_admins_only(make_admin):
    admin = make_admin(recipes=BOOK)
    assert admin.client.get("/ops/recipes").status_code == 401
    assert admin.client.get("/ops/recipes", headers={"X-Admin-Token": "wrong"}).status_code == 401
    listed = admin.get("/ops/recipes").get_json()
    assert listed["configured"] is True
    by_name = {r["name"]: r for r in listed["recipes"]}
    assert list(by_name) == [r.name for r in BOOK.recipes]
    assert by_name["lines"]["params"] == [
        {"name": "count", "pattern": "[0-9]{1,5}", "description": "", "example": ""},
        {"name": "code", "pattern": "[0-9]{1,3}", "description": "", "example": ""}]
    assert by_name["env"]["env"] == ["LANG", "RECIPE_STAGE"]  # names only, never values
    assert "from the recipe" not in str(listed)
    assert by_name["slow"]["timeout"] == 0.5


def test_no_recipe_file_lists_none(make_admin):
    assert make_admin().get("/ops/recipes").get_json() == {
        "configured": False, "recipes": [], "dev_mode": False, "default_runner": None}


@pytest.mark.parametrize("settings, dev_mode, default_runner", [
    ({"recipes": BOOK}, False, None),  # recipes only: a task must name one
    ({"recipes": BOOK, **LLM}, False, "llm"),
    (LLM, False, "llm"),
    ({"recipes": BOOK, **LLM, "dev_mode": True}, True, "dev"),  # dev mode runs every task
])
def test_recipes_say_what_runs_a_task_without_one(make_admin, settings, dev_mode,
                                                  default_runner):
    listed = make_admin(**settings).get("/ops/recipes").get_json()
    assert (listed["dev_mode"], listed["default_runner"]) == (dev_mode, default_runner)


ENV = {"SETTINGS_ADMIN_TOKEN": ADMIN}


def test_llm_settings_are_read_and_the_key_kept_out_of_repr():
    settings = Settings.from_env({**ENV, "OPS_LLM_BASE_URL": "http://localhost:11434/v1/",
                                  "OPS_LLM_MODEL": "llama3", "OPS_LLM_API_KEY": "sk-abc123",
                                  "OPS_LLM_BATCH_SECONDS": "0.5", "OPS_LLM_BATCH_CHARS": "500"})
    assert settings.uses_llm and settings.llm_base_url == "http://localhost:11434/v1"
    assert (settings.llm_batch_seconds, settings.llm_batch_chars) == (0.5, 500)
    assert "sk-abc123" not in repr(settings)


@pytest.mark.parametrize("env, message", [
    ({"OPS_LLM_BASE_URL": "http://localhost:8000/v1"}, "OPS_LLM_MODEL is not set"),
    ({"OPS_LLM_MODEL": "m"}, "OPS_LLM_BASE_URL is not set"),
    ({"OPS_LLM_API_KEY": "k"}, "OPS_LLM_BASE_URL is not set"),
    ({"OPS_LLM_BASE_URL": "localhost:8000", "OPS_LLM_MODEL": "m"},
     "OPS_LLM_BASE_URL must be an http(s) URL"),
    ({"OPS_RECIPES": "/nonexistent/recipes.toml"}, "OPS_RECIPES: cannot read"),
    ({"OPS_RECIPE_KILL_GRACE_SECONDS": "0"}, "OPS_RECIPE_KILL_GRACE_SECONDS must be between"),
    ({"OPS_LOG_MAX_BYTES": "many"}, "OPS_LOG_MAX_BYTES must be an integer"),
    ({"OPS_LOG_MAX_BYTES": "1000"}, "OPS_LOG_MAX_BYTES must be between 65536"),
    # Removed: the start names what replaced them.
    ({"OPS_RECIPE_MAX_LOG_LINES": "10000"},
     "OPS_RECIPE_MAX_LOG_LINES is no longer read: a task's output is capped in bytes: unset "
     "it and set OPS_LOG_MAX_BYTES instead"),
    ({"OPS_RECIPE_LOG_LINES_PER_SECOND": "200"},
     "OPS_RECIPE_LOG_LINES_PER_SECOND is no longer read: no output line is dropped for its "
     "rate any more; unset it (OPS_LOG_MAX_BYTES caps a task's output)"),
])
def test_wrong_runner_settings_stop_the_start(env, message):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({**ENV, **env})
    assert str(error.value).startswith(message)
    assert "sk-" not in str(error.value)
