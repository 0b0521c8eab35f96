"""A deployment's hosts: Plan -> inventory, from the Plan, an inventory file or a sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfhost.errors import InvalidInput
from selfhost.models import Profile
from selfhost.paths import preset_path
from selfhost.plan import plan
from selfhost.profile_io import load_profile
from selfhost.targets import inventory, resolve_target


def _preset(name: str) -> Profile:
    return load_profile(preset_path(name))


def _groups(inv: dict[str, object]) -> dict[str, list[str]]:
    children = inv["all"]["children"]  # type: ignore[index]
    return {g: sorted(children[g]["hosts"]) for g in children}


def test_all_in_one_host_is_in_every_group() -> None:
    inv = inventory.build(plan(_preset("air-gapped")))
    assert _groups(inv) == {"app": ["chat1"], "database": ["chat1"], "backup": ["chat1"],
                            "cache": ["chat1"]}


def test_split_hosts_are_grouped_by_component() -> None:
    inv = inventory.build(plan(_preset("split")))
    assert _groups(inv) == {"app": ["app1", "app2"], "database": ["db1"], "backup": ["db1"],
                            "cache": ["cache1"]}


def test_external_services_leave_their_groups_empty() -> None:
    inv = inventory.build(plan(_preset("external-db")))
    assert _groups(inv) == {"app": ["chat1"], "database": [], "backup": [], "cache": []}


def test_host_vars_come_from_the_plan() -> None:
    inv = inventory.build(plan(_preset("split")))
    assert inv["all"]["hosts"]["db1"] == {"ansible_host": "192.0.2.21", "ansible_port": 22,
                                          "ansible_user": "root", "ansible_become": False}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hosts.yml"
    path.write_text(text)
    return path


def test_inventory_file_supplies_connection_vars(tmp_path: Path) -> None:
    path = _write(tmp_path, """
all:
  vars: {ansible_user: deploy}
  children:
    web:
      hosts:
        chat1: {ansible_host: 10.0.0.5}
""")
    hostvars = inventory.from_file(plan(_preset("air-gapped")), path)["all"]["hosts"]["chat1"]
    assert (hostvars["ansible_host"], hostvars["ansible_user"]) == ("10.0.0.5", "deploy")


def test_inventory_file_missing_a_host_names_it(tmp_path: Path) -> None:
    path = _write(tmp_path, "all:\n  hosts:\n    app1: {}\n    app2: {}\n    db1: {}\n")
    with pytest.raises(InvalidInput, match=r"missing the profile's host\(s\) cache1"):
        inventory.from_file(plan(_preset("split")), path)


def test_inventory_file_with_an_unknown_host_names_it(tmp_path: Path) -> None:
    path = _write(tmp_path, "all:\n  hosts:\n    chat1: {}\n    stray: {}\n")
    with pytest.raises(InvalidInput, match="does not name: stray"):
        inventory.from_file(plan(_preset("air-gapped")), path)


def test_inventory_file_that_is_not_yaml(tmp_path: Path) -> None:
    path = _write(tmp_path, "all: [unclosed\n")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        inventory.from_file(plan(_preset("air-gapped")), path)


def test_inventory_file_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="check --inventory"):
        inventory.from_file(plan(_preset("air-gapped")), tmp_path / "nope.yml")


def test_map_onto_moves_hosts_in_plan_order() -> None:
    moved = inventory.map_onto(_preset("split"), ["10.1.0.2", "10.1.0.3", "10.1.0.4",
                                                  "10.1.0.5"], sandbox="s")
    assert [(h.name, h.address) for h in plan(moved).hosts] == [
        ("app1", "10.1.0.2"), ("app2", "10.1.0.3"), ("db1", "10.1.0.4"), ("cache1", "10.1.0.5")]


def test_map_onto_rewires_the_database_url() -> None:
    moved = inventory.map_onto(_preset("split"), ["10.1.0.2", "10.1.0.3", "10.1.0.4",
                                                  "10.1.0.5"], sandbox="s")
    assert plan(moved).database.host == "10.1.0.4"


def test_map_onto_changes_the_fingerprint() -> None:
    profile = _preset("air-gapped")
    moved = inventory.map_onto(profile, ["10.1.0.2"], sandbox="s")
    assert plan(moved).profile_fingerprint != plan(profile).profile_fingerprint


def test_map_onto_too_few_guests_says_how_many() -> None:
    with pytest.raises(InvalidInput, match="--hosts 4"):
        inventory.map_onto(_preset("split"), ["10.1.0.2"], sandbox="s")


def test_sandbox_connection_uses_the_guests_key_and_known_hosts(tmp_path: Path) -> None:
    path = _write(tmp_path, """
all:
  children:
    sandbox_s:
      hosts:
        s-1:
          ansible_host: 10.1.0.2
          ansible_ssh_private_key_file: /k/id
          ansible_ssh_common_args: -o UserKnownHostsFile=/k/known_hosts
          ansible_python_interpreter: /usr/bin/python3
""")
    the_plan = plan(inventory.map_onto(_preset("air-gapped"), ["10.1.0.2"], sandbox="s"))
    conn = inventory.sandbox_connection(the_plan, ["s-1"], path)
    assert conn == {"chat1": {"ansible_ssh_private_key_file": "/k/id",
                              "ansible_ssh_common_args": "-o UserKnownHostsFile=/k/known_hosts",
                              "ansible_python_interpreter": "/usr/bin/python3",
                              "ansible_user": "root"}}


@pytest.mark.parametrize("preset", ["air-gapped", "split"])
def test_deploy_refuses_a_presets_documentation_address(preset: str) -> None:
    with pytest.raises(InvalidInput, match=r"hosts\.app\.0\.address: 192\.0\.2\.1\d is a "
                       r"documentation address"):
        resolve_target(_preset(preset), source=preset_path(preset))
