"""What site.yml hands each role: its layout variables, read from the playbook."""

from __future__ import annotations

import re

from ruamel.yaml import YAML

from selfhost.paths import ANSIBLE_DIR

_FROM_LAYOUT = re.compile(r"^\{\{ selfhost_plan\.layout\.(\w+) \}\}$")


PLAYBOOKS = ("site.yml", "teardown.yml")


def site_role_vars() -> dict[str, list[dict[str, str]]]:
    """role -> the ``vars`` of each place a playbook (site.yml, teardown.yml) applies
    it (a role entry of a play, or an include_role task)."""
    plays = [play for name in PLAYBOOKS
             for play in YAML(typ="safe").load((ANSIBLE_DIR / name).read_text())]
    out: dict[str, list[dict[str, str]]] = {}
    for play in plays:
        for entry in play.get("roles", []):
            out.setdefault(entry["role"], []).append(dict(entry.get("vars", {})))
        for task in play.get("tasks", []):
            if include := task.get("ansible.builtin.include_role"):
                out.setdefault(include["name"], []).append(dict(task.get("vars", {})))
    return out


def layout_field(expression: str) -> str | None:
    """``layout_field("{{ selfhost_plan.layout.tls_key }}") == "tls_key"``; ``None`` for
    anything but one field of the layout."""
    match = _FROM_LAYOUT.match(expression)
    return match.group(1) if match else None
