"""Plan + secrets + host keys -> the SELFHOST_SECRET_* environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfhost.deploy.secrets_env import build_env
from selfhost.errors import SecretsError
from selfhost.paths import preset_path
from selfhost.plan import Plan, plan
from selfhost.profile_io import load_profile


def _plan(name: str) -> Plan:
    return plan(load_profile(preset_path(name)))


def _all_values(p: Plan) -> dict[str, str]:
    return {s.name: f"value-of-{s.name}" for s in p.secrets_required}


def test_every_required_secret_becomes_a_variable() -> None:
    p = _plan("us-openai")
    env = build_env(p, _all_values(p), {}, profile_path=Path("p.yaml"))
    assert env["SELFHOST_SECRET_OPENAI_API_KEY"] == "value-of-openai_api_key"


def test_secrets_the_plan_does_not_need_are_left_out() -> None:
    p = _plan("air-gapped")
    values = {**_all_values(p), "openai_api_key": "sk-unused"}
    env = build_env(p, values, {}, profile_path=Path("p.yaml"))
    assert "SELFHOST_SECRET_OPENAI_API_KEY" not in env


def test_host_keys_follow_the_readme_naming() -> None:
    p = _plan("split")
    env = build_env(p, _all_values(p), {"cache-1.example": "KEY"},
                    profile_path=Path("p.yaml"))
    assert env["SELFHOST_SECRET_TLS_KEY_CACHE_1_EXAMPLE"] == "KEY"


def test_pki_naming_wins_when_given() -> None:
    p = _plan("split")
    env = build_env(p, _all_values(p), {"db1": "K"}, profile_path=Path("p.yaml"),
                    key_env={"SELFHOST_SECRET_TLS_KEY_DB1": "K"})
    assert env["SELFHOST_SECRET_TLS_KEY_DB1"] == "K"


def test_missing_supplied_secret_names_its_variable_and_init() -> None:
    p = _plan("us-openai")
    values = _all_values(p)
    del values["openai_api_key"]
    with pytest.raises(SecretsError, match=r"openai_api_key: supply it with `selfhost init.*"
                       r"SELFHOST_OPENAI_API_KEY"):
        build_env(p, values, {}, profile_path=Path("p.yaml"))


def test_missing_generated_secret_says_init_generates_it() -> None:
    p = _plan("air-gapped")
    values = _all_values(p)
    del values["database_password"]
    with pytest.raises(SecretsError, match="database_password: generate it with"):
        build_env(p, values, {}, profile_path=Path("p.yaml"))
