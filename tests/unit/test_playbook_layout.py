"""site.yml hands every role what it needs from the Plan (its layout values and the
Plan's decisions), and each role declares exactly those as required options
(meta/argument_specs.yml) and defaults none: role defaults are knobs."""

from __future__ import annotations

import re

import pytest
from playbook_support import layout_field, site_role_vars
from ruamel.yaml import YAML

from selfhost.layout import HostLayout
from selfhost.paths import ANSIBLE_DIR

ROLES = sorted(p.name for p in (ANSIBLE_DIR / "roles").iterdir())
#: extra vars of `selfhost deploy` (ansible/README.md), not role variables
EXTRA_VARS = ("selfhost_plan", "selfhost_pki", "selfhost_tool_version", "selfhost_acme_ca",
              "selfhost_app_release", "selfhost_drift", "selfhost_record_release")


def _load(path: str) -> dict[str, object]:
    data = YAML(typ="safe").load((ANSIBLE_DIR / path).read_text())
    return data or {}


def _required(role: str) -> dict[str, set[str]]:
    """entry point -> its required options other than the extra vars."""
    specs = _load(f"roles/{role}/meta/argument_specs.yml")["argument_specs"]
    assert isinstance(specs, dict)
    return {entry: {name for name, option in spec["options"].items()
                    if option.get("required") and name not in EXTRA_VARS}
            for entry, spec in specs.items()}


@pytest.mark.parametrize("role", ROLES)
def test_site_passes_each_role_exactly_its_required_layout_options(role: str) -> None:
    passed = [set(v) for v in site_role_vars()[role]]
    assert passed
    assert all(p == passed[0] for p in passed), passed
    # site.yml runs each role's main entry point; others (the app's `drain`) belong to
    # the playbooks that include them
    assert _required(role)["main"] == passed[0]


@pytest.mark.parametrize("role", ROLES)
def test_the_layout_options_are_declared_with_a_description(role: str) -> None:
    options = _load(f"roles/{role}/meta/argument_specs.yml")["argument_specs"]
    assert isinstance(options, dict)
    for name in site_role_vars()[role][0]:
        option = options["main"]["options"][name]
        assert (option.get("required"), bool(option.get("description"))) == (True, True), name


@pytest.mark.parametrize("role", ROLES)
def test_no_role_default_stands_in_for_the_layout(role: str) -> None:
    defaults = _load(f"roles/{role}/defaults/main.yml")
    assert set(defaults) & set(site_role_vars()[role][0]) == set()


def test_every_layout_field_reaches_a_role() -> None:
    used = {layout_field(value) for uses in site_role_vars().values()
            for one in uses for value in one.values()}
    # the upgrade playbook reads the rest (the `previous` link, the dumps' directory)
    upgrade = (ANSIBLE_DIR / "upgrade.yml").read_text()
    used |= set(re.findall(r"(?:selfhost_plan\.layout|up_layout)\.(\w+)", upgrade))
    assert set(HostLayout.model_fields) - used == set()


def test_site_hands_over_only_what_the_plan_says() -> None:
    # Literals belong in role defaults (knobs) or in the layout, not in a playbook;
    # teardown.yml also hands over its own extra vars (what to remove, from the record).
    values = [value for uses in site_role_vars().values() for one in uses
              for value in one.values()]
    assert [v for v in values
            if "selfhost_plan." not in str(v) and "selfhost_teardown" not in str(v)] == []


@pytest.mark.parametrize("role", ROLES)
def test_role_defaults_are_knobs_not_the_plan(role: str) -> None:
    defaults = _load(f"roles/{role}/defaults/main.yml")
    assert {k: v for k, v in defaults.items() if "selfhost_plan" in str(v)} == {}
