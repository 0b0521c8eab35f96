"""Choosing between Mitogen and plain Ansible."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfhost.deploy.engine import ENGINE_ENV, ansible_env, choose, mitogen_strategy_dir
from selfhost.errors import InvalidInput


def test_default_is_mitogen() -> None:
    assert choose(None) == "mitogen"


def test_environment_variable_selects_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENGINE_ENV, "plain")
    assert choose(None) == "plain"


def test_option_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENGINE_ENV, "plain")
    assert choose("mitogen") == "mitogen"


def test_unknown_engine_names_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENGINE_ENV, "turbo")
    with pytest.raises(InvalidInput, match=f"{ENGINE_ENV} 'turbo' is not an engine"):
        choose(None)


def test_mitogen_strategy_plugin_is_installed() -> None:
    assert (mitogen_strategy_dir() / "mitogen_linear.py").is_file()


def test_mitogen_env_selects_its_strategy() -> None:
    env = ansible_env("mitogen", Path("/a/ansible.cfg"))
    assert (env["ANSIBLE_STRATEGY"], env["ANSIBLE_STRATEGY_PLUGINS"]) == (
        "mitogen_linear", str(mitogen_strategy_dir()))


def test_plain_env_uses_the_linear_strategy() -> None:
    env = ansible_env("plain", Path("/a/ansible.cfg"))
    assert (env["ANSIBLE_STRATEGY"], "ANSIBLE_STRATEGY_PLUGINS" in env) == ("linear", False)


@pytest.mark.parametrize("engine", ["mitogen", "plain"])
def test_both_engines_read_the_playbooks_config_and_pipeline(engine: str) -> None:
    env = ansible_env(engine, Path("/a/ansible.cfg"))  # type: ignore[arg-type]
    assert (env["ANSIBLE_CONFIG"], env["ANSIBLE_PIPELINING"]) == ("/a/ansible.cfg", "True")


@pytest.mark.parametrize("engine", ["mitogen", "plain"])
def test_both_engines_check_host_keys(engine: str) -> None:
    # ansible-runner would otherwise set ANSIBLE_HOST_KEY_CHECKING=False
    assert ansible_env(engine, Path("/a/ansible.cfg"))["ANSIBLE_HOST_KEY_CHECKING"] == "True"  # type: ignore[arg-type]
