"""The Ansible inventory for one sandbox."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from selfhost.sandbox.ssh import ssh_options


def group_name(sandbox: str) -> str:
    """Ansible group names must be identifiers; sandbox names may contain dashes."""
    return "sandbox_" + re.sub(r"[^A-Za-z0-9_]", "_", sandbox)


def render(
    sandbox: str,
    guests: Sequence[tuple[str, str, str]],
    ssh_key: Path,
    known_hosts: Path,
) -> str:
    """YAML inventory: every guest (name, address, release) in group ``sandbox_<name>``
    and in a group named after its release, with ssh checking host keys strictly."""
    # -i/-F are left to Ansible (it passes the key itself and has its own config).
    common = ssh_options(ssh_key, known_hosts)[4:]
    hosts: dict[str, Any] = {}
    by_release: dict[str, dict[str, None]] = {}
    for name, address, release in guests:
        hosts[name] = {
            "ansible_host": address,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(ssh_key),
            "ansible_ssh_common_args": " ".join(common),
            "ansible_python_interpreter": "/usr/bin/python3",
            "selfhost_sandbox_release": release,
        }
        by_release.setdefault(release, {})[name] = None
    children: dict[str, Any] = {group_name(sandbox): {"hosts": hosts}}
    for release, names in sorted(by_release.items()):
        children[release] = {"hosts": names}
    doc = {"all": {"children": children}}
    out = io.StringIO()
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    yaml.dump(doc, out)
    return f"# written by `selfhost sandbox up`; regenerated on every run\n{out.getvalue()}"
