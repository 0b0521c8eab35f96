"""The sandbox's server image holds what the roles install on an all-in-one host."""

from __future__ import annotations

import re
from pathlib import Path

from ruamel.yaml import YAML

from selfhost.sandbox import rootfs
from selfhost.sandbox.state import Paths

ROLES = Path(__file__).resolve().parents[2] / "ansible" / "roles"
#: installed only off the all-in-one path: ACME certificates, hosts that are not
#: containers, and a release's own packages (named by its manifest)
NOT_IN_IMAGE = {"certbot", "systemd-timesyncd"}


def _apt_names() -> set[str]:
    """Every package an ansible.builtin.apt task of the roles names, variables resolved
    through the roles' defaults."""
    yaml = YAML(typ="safe")
    defaults: dict[str, object] = {}
    for f in ROLES.glob("*/defaults/main.yml"):
        defaults.update(yaml.load(f.read_text()) or {})
    names: set[str] = set()
    for f in ROLES.glob("*/tasks/*.yml"):
        for task in yaml.load(f.read_text()) or []:
            apt = task.get("ansible.builtin.apt") if isinstance(task, dict) else None
            if not isinstance(apt, dict) or apt.get("state") != "present":
                continue
            name = apt["name"]
            if isinstance(name, str) and (m := re.fullmatch(r"\{\{\s*(\w+)\s*\}\}", name)):
                name = defaults.get(m.group(1), name)
            names.update([name] if isinstance(name, str) else name)
    return {n for n in names if "{{" not in n}


def test_the_server_image_holds_every_package_the_roles_install() -> None:
    names = _apt_names()
    # {"postgresql", "squid"} <= names: the roles were read at all
    assert ({"postgresql", "squid"} <= names, names - NOT_IN_IMAGE) == (
        True, set(rootfs.SERVER_PACKAGES))


def test_each_image_has_its_own_cache_file(tmp_path: Path) -> None:
    paths = Paths(state=tmp_path / "s", cache=tmp_path / "c")
    mirror = "http://deb.debian.org/debian"
    base = rootfs.cache_file(paths, "bookworm", mirror)
    server = rootfs.cache_file(paths, "bookworm", mirror, "server")
    assert (base.name.startswith("debian-bookworm-"),
            server.name.startswith("debian-server-bookworm-"), base != server) == (
        True, True, True)
