"""Inventory rendering, ssh command lines and known_hosts: pure logic."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from selfhost.sandbox.inventory import group_name, render
from selfhost.sandbox.models import Guest, Sandbox
from selfhost.sandbox.ssh import known_hosts_lines

KEY = Path("/state/sandboxes/ci-web/id_ed25519")
KNOWN = Path("/state/sandboxes/ci-web/known_hosts")


def _inventory() -> dict[str, Any]:
    text = render("ci-web", [("ci-web-1", "10.0.0.2", "bookworm"),
                             ("ci-web-2", "10.0.0.3", "bookworm")], KEY, KNOWN)
    data: dict[str, Any] = YAML(typ="safe").load(text)
    return data


def _host(name: str) -> dict[str, Any]:
    host: dict[str, Any] = _inventory()["all"]["children"]["sandbox_ci_web"]["hosts"][name]
    return host


@pytest.mark.parametrize(
    ("var", "expected"),
    [
        ("ansible_host", "10.0.0.3"),
        ("ansible_user", "root"),
        ("ansible_ssh_private_key_file", str(KEY)),
        ("ansible_python_interpreter", "/usr/bin/python3"),
    ],
)
def test_host_vars(var: str, expected: str) -> None:
    assert _host("ci-web-2")[var] == expected


@pytest.mark.parametrize(
    "option",
    [f"UserKnownHostsFile={KNOWN}", "StrictHostKeyChecking=yes", "BatchMode=yes"],
)
def test_ssh_args_check_host_keys_strictly(option: str) -> None:
    assert option in shlex.split(_host("ci-web-1")["ansible_ssh_common_args"])


def test_release_group_lists_the_guests() -> None:
    assert set(_inventory()["all"]["children"]["bookworm"]["hosts"]) == {"ci-web-1", "ci-web-2"}


def test_group_name_is_an_identifier() -> None:
    assert group_name("ci-web").isidentifier()


def test_known_hosts_names_guest_and_address() -> None:
    text = known_hosts_lines([(("g-1", "10.0.0.2"), ["ssh-ed25519 AAAA"])])
    assert text == "g-1,10.0.0.2 ssh-ed25519 AAAA\n"


def _box() -> Sandbox:
    guest = Guest("g-1", "10.0.0.2", "bookworm", 42, "running", Path("/g"))
    return Sandbox("g", "bookworm", [guest], KEY, KNOWN, Path("/inv.yml"), "10.0.0.1", Path("/"))


def test_ssh_command_quotes_each_argument() -> None:
    argv = _box().ssh_command("g-1", "bash", "-c", "echo a b")
    assert argv[-2:] == ["root@10.0.0.2", "bash -c 'echo a b'"]


@pytest.mark.parametrize(
    "option",
    ["BatchMode=yes", "StrictHostKeyChecking=yes", f"UserKnownHostsFile={KNOWN}",
     "ConnectTimeout=5"],
)
def test_ssh_command_options(option: str) -> None:
    assert option in _box().ssh_command("g-1", "true")


def test_ssh_command_for_unknown_guest_names_the_known_ones() -> None:
    from selfhost.errors import InvalidInput

    with pytest.raises(InvalidInput, match="g-1"):
        _box().ssh_command("g-9", "true")
