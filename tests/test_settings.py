"""The generic reader of app/config.py: one declaration gives the field's default and the
variable's; what a blank or wrong value does."""

from __future__ import annotations

import pytest

from app.config import ConfigError, ServerSettings, Settings, read_env

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
