"""The recipe file (OPS_RECIPES): what it accepts, what it refuses, and parameter checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.config import ConfigError, Settings
from app.recipes import RecipeError, RecipeFileError, load_recipes, parse_recipes
from tests.support.api import ADMIN
from tests.support.runners import RECIPES

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "recipes.toml"


def parse(recipes: dict, base: Path = Path("/")):
    return parse_recipes({"recipes": recipes}, base=base)


def deploy(**changes) -> dict:
    spec = {"argv": ["/usr/local/bin/deploy", "{service}", "--ref", "{ref}"],
            "params": {"service": {"pattern": "api|web"},
                       "ref": {"pattern": r"v\d+\.\d+\.\d+", "description": "a release tag"}}}
    spec.update(changes)
    return spec


def test_a_parameter_may_give_an_example_for_forms():
    spec = deploy(params={"service": {"pattern": "api|web"},
                          "ref": {"pattern": r"v\d+\.\d+\.\d+", "example": "v1.2.3"}})
    params = parse({"deploy": spec}).get("deploy").to_dict()["params"]
    assert [p["example"] for p in params] == ["", "v1.2.3"]


def test_a_recipe_binds_parameters_as_whole_argv_elements():
    recipe = parse({"deploy": deploy()}).get("deploy")
    assert recipe.command({"service": "api", "ref": "v1.2.3"}) == [
        "/usr/local/bin/deploy", "api", "--ref", "v1.2.3"]


@pytest.mark.parametrize("params, message", [
    ({"service": "api"}, "recipe deploy needs parameter(s) ref"),
    ({}, "recipe deploy needs parameter(s) service, ref"),
    ({"service": "api", "ref": "v1.2.3", "force": "yes"},
     "recipe deploy has no parameter(s) force; its parameters: service, ref"),
    ({"service": "api", "ref": "v1.2"},
     "parameter ref does not match its pattern 'v\\\\d+\\\\.\\\\d+\\\\.\\\\d+': got 'v1.2'"),
    ({"service": "api ", "ref": "v1.2.3"}, "parameter service does not match"),  # full match
    ({"service": "api", "ref": 7}, "parameter ref must be a string"),
    ({"service": "api", "ref": "v1.2.3\n"}, "parameter ref must not contain control characters"),
    ({"service": "api", "ref": ""}, "parameter ref must have 1 to 256 characters"),
    (["api"], "params must be a JSON object of strings"),
])
def test_wrong_parameters_are_named(params, message):
    recipe = parse({"deploy": deploy()}).get("deploy")
    with pytest.raises(RecipeError) as error:
        recipe.bind(params)
    assert str(error.value).startswith(message)


def test_an_unknown_recipe_lists_the_known_ones():
    with pytest.raises(RecipeError, match="unknown recipe 'ship'; known recipes: deploy"):
        parse({"deploy": deploy()}).get("ship")


@pytest.mark.parametrize("spec, message", [
    ({"argv": "make build"}, "argv must be a non-empty list of non-empty strings"),
    ({"argv": []}, "argv must be a non-empty list"),
    ({"argv": ["{prog}"], "params": {"prog": {"pattern": ".*"}}}, "argv[0] (the program) cannot"),
    (deploy(params={"service": {"pattern": "api"}}), "argv uses undeclared parameter(s) ref"),
    (deploy(argv=["deploy", "{service}", "--ref={ref}"]),
     "parameter(s) ref are declared but not used"),
    (deploy(params={"service": {"pattern": "("}, "ref": {"pattern": "v"}}),
     "parameter service: pattern is not a valid regular expression"),
    (deploy(params={"service": {}, "ref": {"pattern": "v"}}), "parameter service: needs a pattern"),
    ({"argv": ["make"], "timeout": 0}, "timeout must be a number of seconds"),
    ({"argv": ["make"], "timeout": "1h"}, "timeout must be a number of seconds"),
    ({"argv": ["make"], "cwd": "/nonexistent/dir"}, "cwd /nonexistent/dir is not a directory"),
    ({"argv": ["make"], "env": {"SETTINGS_ADMIN_TOKEN": "x"}},
     "env SETTINGS_ADMIN_TOKEN: the service's secrets are never passed"),
    ({"argv": ["make"], "env": {"N": 1}}, "env 'N': names are letters"),
    ({"argv": ["make"], "shell": True}, "unknown key(s) shell"),
    (deploy(params={"service": {"pattern": "api|web", "example": "db"},
                    "ref": {"pattern": "v"}}),
     "parameter service: example 'db' does not match its pattern"),
])
def test_a_bad_recipe_is_refused_with_its_name_and_problem(spec, message):
    with pytest.raises(RecipeFileError) as error:
        parse({"deploy": spec})
    assert f"recipe 'deploy': {message}" in str(error.value)


def test_recipe_names_are_checked():
    with pytest.raises(RecipeFileError, match="names are 1-64 lowercase"):
        parse({"Deploy Now": {"argv": ["make"]}})


def test_a_relative_cwd_is_resolved_against_the_file(tmp_path):
    (tmp_path / "src").mkdir()
    book = parse({"build": {"argv": ["make"], "cwd": "src"}}, base=tmp_path)
    assert book.get("build").cwd == str(tmp_path / "src")


def test_the_file_must_be_toml(tmp_path):
    path = tmp_path / "recipes.toml"
    path.write_text("[recipes.build\nargv = 1")
    with pytest.raises(RecipeFileError, match="is not valid TOML"):
        load_recipes(path)
    with pytest.raises(RecipeFileError, match="cannot read"):
        load_recipes(tmp_path / "missing.toml")


def test_the_settings_refuse_a_bad_recipe_file_at_start_up(tmp_path):
    path = tmp_path / "recipes.toml"
    path.write_text('[recipes.build]\nargv = ["make"]\nshell = true\n')
    with pytest.raises(ConfigError, match=r"^OPS_RECIPES: .*'build': unknown key\(s\) shell"):
        Settings.from_env({"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_RECIPES": str(path)})


def test_the_test_and_example_files_load():
    assert len(load_recipes(RECIPES)) > 10
    example = load_recipes(EXAMPLE)
    assert [r.name for r in example.recipes] == ["build", "deploy"]
    settings = Settings.from_env({"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_RECIPES": str(EXAMPLE),
                                  "OPS_RECIPE_USER": "nobody"}, is_root=lambda: True)
    assert settings.recipes == example


@pytest.mark.parametrize("ref", ["HEAD..HEAD~1", "a/../../etc/passwd", "main..", "..", "-x"])
def test_the_example_deploy_refuses_ranges_and_paths_that_climb(ref):
    """Its comment says no ".." anywhere; the pattern let both of these through."""
    deploy = load_recipes(EXAMPLE).get("deploy")
    with pytest.raises(RecipeError, match="parameter ref does not match its pattern"):
        deploy.bind({"service": "api", "ref": ref})


@pytest.mark.parametrize("ref", ["main", "v1.2.3", "HEAD~1", "HEAD^", "feature/x", "a.b-c_d"])
def test_the_example_deploy_takes_ordinary_refs(ref):
    deploy = load_recipes(EXAMPLE).get("deploy")
    assert deploy.command(deploy.bind({"service": "api", "ref": ref}))[-1] == ref


def test_a_concurrency_group_is_named_with_the_parameters():
    recipe = parse({"deploy": deploy(concurrency="deploy-{service}",
                                     concurrency_policy="reject")}).get("deploy")
    assert recipe.group({"service": "api", "ref": "v1.2.3"}) == "deploy-api"
    shown = recipe.to_dict()
    assert (shown["concurrency"], shown["concurrency_policy"]) == ("deploy-{service}", "reject")
    plain = parse({"deploy": deploy()}).get("deploy")
    assert plain.group({"service": "api", "ref": "v1"}) is None
    assert (plain.to_dict()["concurrency"], plain.to_dict()["concurrency_policy"]) == (None, None)
    default = parse({"deploy": deploy(concurrency="deploys")}).get("deploy")
    assert (default.group({"service": "web", "ref": "v1"}), default.concurrency_policy) == (
        "deploys", "queue")


def test_a_parameter_used_only_by_the_group_counts_as_used():
    spec = {"argv": ["/bin/deploy"], "concurrency": "deploy-{service}",
            "params": {"service": {"pattern": "api|web"}}}
    assert parse({"deploy": spec}).get("deploy").group({"service": "web"}) == "deploy-web"


@pytest.mark.parametrize("changes, message", [
    ({"concurrency": "deploy-{region}"}, "concurrency uses undeclared parameter(s) region"),
    ({"concurrency": "deploy-{service"}, "a placeholder is a parameter's name in braces"),
    ({"concurrency": ""}, "concurrency must be a group name"),
    ({"concurrency": 3}, "concurrency must be a group name"),
    ({"concurrency": "d", "concurrency_policy": "wait"}, "concurrency_policy must be one of "
                                                         "queue, reject, cancel-running"),
    ({"concurrency_policy": "reject"}, "concurrency_policy needs a concurrency group"),
])
def test_a_bad_concurrency_group_is_refused(changes, message):
    with pytest.raises(RecipeFileError, match=re.escape(message)):
        parse({"deploy": deploy(**changes)})
