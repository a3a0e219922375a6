"""The generic reader of app/config.py: one declaration gives the field's default and the
variable's; what a blank or wrong value does."""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

import pytest

from app.config import ConfigError, ServerSettings, Settings, read_env
from app.isolation import RecipeUser

TOKEN = "an-admin-token-0123456789abc"
ADMIN = {"SETTINGS_ADMIN_TOKEN": TOKEN}
SECRET = "a-stream-secret-0123456789"


def test_unset_variables_give_the_field_defaults():
    from_env = Settings.from_env({**ADMIN, "OPS_STREAM_SECRET": SECRET})
    # Only the retention default depends on another setting (the store).
    assert from_env == Settings(admin_token=TOKEN, stream_secrets=(SECRET,),
                                retention_seconds=86_400)
    assert ServerSettings.from_env({}) == ServerSettings()


def test_blank_is_unset_for_numbers_and_text():
    settings = Settings.from_env({**ADMIN, "OPS_WORKERS": " ", "OPS_LLM_MODEL": "",
                                  "SUPABASE_URL": "  "})
    assert (settings.workers, settings.llm_model, settings.supabase_url) == (4, None, None)


def test_a_set_but_blank_stream_secret_is_refused_not_replaced():
    with pytest.raises(ConfigError, match="OPS_STREAM_SECRET must be one or more"):
        Settings.from_env({**ADMIN, "OPS_STREAM_SECRET": ""})
    assert Settings.from_env(ADMIN).stream_secret_is_fallback


def test_a_set_but_blank_proxy_list_trusts_no_proxy():
    assert Settings.from_env({**ADMIN, "FORWARDED_ALLOW_IPS": ""}).trusted_proxies == ()


def test_the_admin_token_is_required_first():
    with pytest.raises(ConfigError, match="^SETTINGS_ADMIN_TOKEN is not set: export"):
        Settings.from_env({"SETTINGS_ADMIN_TOKEN": " ", "OPS_WORKERS": "0"})


def test_some_fields_alone():
    env = {"FORWARDED_ALLOW_IPS": "10.0.0.1", "OPS_WORKERS": "many"}
    assert read_env(Settings, env, names=["trusted_proxies"]) == {"trusted_proxies": ("10.0.0.1",)}


def test_a_short_admin_token_is_refused_outside_dev_mode_and_says_how_to_make_one():
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"SETTINGS_ADMIN_TOKEN": "k9x"})
    assert str(refused.value) == (
        "SETTINGS_ADMIN_TOKEN must be at least 24 characters long outside dev mode; make one "
        "with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")
    assert "k9x" not in str(refused.value)
    assert Settings.from_env({"SETTINGS_ADMIN_TOKEN": "x" * 24}).admin_token == "x" * 24


def test_dev_mode_accepts_a_short_admin_token():
    assert Settings.from_env({"SETTINGS_ADMIN_TOKEN": "adm", "DEV_LOCAL_LLM": "1"}).dev_mode


RECIPES = {**ADMIN, "OPS_RECIPES": str(Path(__file__).parent / "support" / "recipes.toml")}


def as_root():
    return True


def test_as_root_recipes_need_a_recipe_user():
    with pytest.raises(ConfigError, match="^OPS_RECIPE_USER is not set: as root, recipes must "
                                          "run as an unprivileged user"):
        Settings.from_env(RECIPES, is_root=as_root)
    nobody = pwd.getpwnam("nobody")
    for name in ("nobody", str(nobody.pw_uid), " nobody "):
        user = Settings.from_env({**RECIPES, "OPS_RECIPE_USER": name}, is_root=as_root).recipe_user
        assert user == RecipeUser("nobody", nobody.pw_uid, nobody.pw_gid, nobody.pw_dir)


def test_dev_mode_or_an_ordinary_user_runs_recipes_without_a_recipe_user():
    assert Settings.from_env({**RECIPES, "DEV_LOCAL_LLM": "1"}, is_root=as_root).recipes
    assert Settings.from_env(RECIPES, is_root=lambda: False).recipe_user is None
    assert Settings.from_env(ADMIN, is_root=as_root).recipe_user is None  # no recipes


@pytest.mark.parametrize("name, message", [
    ("root", "OPS_RECIPE_USER must be an unprivileged user, not root"),
    ("0", "OPS_RECIPE_USER must be an unprivileged user, not root"),
    ("no-such-user-here", "OPS_RECIPE_USER: no user 'no-such-user-here' on this system"),
    ("4294967296", "OPS_RECIPE_USER: no user '4294967296' on this system"),
])
def test_a_recipe_user_must_exist_and_not_be_root(name, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        Settings.from_env({**RECIPES, "OPS_RECIPE_USER": name}, is_root=as_root)


def test_only_root_can_run_recipes_as_another_user():
    other = "nobody" if os.geteuid() != pwd.getpwnam("nobody").pw_uid else "daemon"
    with pytest.raises(ConfigError, match=f"^OPS_RECIPE_USER={other}: only a service running "
                                          "as root can run recipes as another user"):
        Settings.from_env({**RECIPES, "OPS_RECIPE_USER": other}, is_root=lambda: False)
