"""The host layout has one owner: no file of the playbook spells out a value of
``HostLayout``; the roles get every one from the Plan (``selfhost_plan.layout``)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from selfhost.layout import LAYOUT, HostLayout
from selfhost.paths import ANSIBLE_DIR

#: the parts of a role that write to hosts (meta/ only documents, library/ modules
#: take their paths as options)
SCANNED_DIRS = ("tasks", "templates", "defaults", "handlers", "vars", "files")
#: a character that continues a path or a name: a literal must not be part of a longer one
_WORD = r"[\w.@-]"


def scanned_files(root: Path) -> list[Path]:
    files = [root / "site.yml"]
    for role in sorted((root / "roles").iterdir()):
        for part in SCANNED_DIRS:
            if (role / part).is_dir():
                files += sorted(p for p in (role / part).rglob("*") if p.is_file())
    return files


def _literals(layout: HostLayout) -> Iterator[tuple[str, str]]:
    """(field, literal) for every value of the layout; a mapping gives its keys."""
    for field, value in layout.model_dump().items():
        if isinstance(value, str):
            yield field, value
        elif isinstance(value, dict):
            yield from ((field, key) for key in value)
        else:  # pragma: no cover - a new kind of field needs a rule here
            raise TypeError(f"HostLayout.{field}: no guard rule for {type(value).__name__}")


_SERVICE_MODULE = re.compile(
    r"^(\s*)(?:-\s+)?(?:ansible\.builtin\.)?(?:systemd_service|systemd|service):\s*$")
_NAME_VALUE = re.compile(r"""^\s*(?:-\s+)?name:\s*["']?([^"'\s]+)["']?\s*$""")


class Rule:
    """One way a role could repeat layout values, and the fields it would repeat."""

    def __init__(self, what: str, pattern: str) -> None:
        self.what, self.pattern, self.fields = what, re.compile(pattern), list[str]()


def rules(layout: HostLayout) -> tuple[list[Rule], dict[str, list[str]]]:
    """The text rules, and the short unit names (without ".service") a service
    module's ``name:`` may not be."""
    by_pattern: dict[str, Rule] = {}
    units: dict[str, list[str]] = {}

    def add(field: str, what: str, pattern: str) -> None:
        by_pattern.setdefault(pattern, Rule(what, pattern)).fields.append(field)

    paths = [v for _, v in _literals(layout) if v.startswith("/")]
    for field, value in _literals(layout):
        if value.startswith("/"):
            # The path as a whole token; followed by "/" it is a file under it, which
            # repeats the directory as well.
            add(field, value, rf"(?<![\w./@-]){re.escape(value)}(?!{_WORD})")
            parents = [d for d in paths if value.startswith(d + "/")]
            if parents and not any(p.startswith(value + "/") for p in paths):
                # A file composed from a variable and its name in the layout's nearest
                # directory: `{{ some_dir }}/server.key`.
                name = str(PurePosixPath(value).relative_to(max(parents, key=len)))
                add(field, f"}}}}/{name}", rf"\}}\}}/{re.escape(name)}(?!{_WORD}|/)")
        else:
            add(field, value, rf"(?<!{_WORD}){re.escape(value)}(?!{_WORD})")
            stem = value.removesuffix(".service")
            if stem != value:
                # systemctl and Ansible's service modules also take the unit without
                # ".service".
                add(field, f"systemctl ... {stem}",
                    rf"""\bsystemctl\b.*\s["']?{re.escape(stem)}["']?(?:\s|$)""")
                units.setdefault(stem, []).append(field)
    return list(by_pattern.values()), units


def _message(root: Path, path: Path, number: int, what: str, fields: list[str]) -> str:
    names = " / ".join(f"HostLayout.{f}" for f in fields)
    return (f"{path.relative_to(root)}:{number}: {what!r} repeats {names}; take it from "
            "selfhost_plan.layout (site.yml passes it to the role)")


def offences(root: Path, layout: HostLayout = LAYOUT) -> list[str]:
    """``file:line: ...`` for every literal of ``layout`` in the playbook under ``root``."""
    text_rules, units = rules(layout)
    found = []
    for path in scanned_files(root):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            continue
        service_indent: int | None = None
        for number, line in enumerate(lines, 1):
            found += [_message(root, path, number, r.what, r.fields)
                      for r in text_rules if r.pattern.search(line)]
            indent = len(line) - len(line.lstrip())
            if service_indent is not None and line.strip() and indent <= service_indent:
                service_indent = None
            if opener := _SERVICE_MODULE.match(line):
                service_indent = len(opener.group(1))
            elif (service_indent is not None and (name := _NAME_VALUE.match(line))
                  and name.group(1) in units):
                found.append(_message(root, path, number, f"name: {name.group(1)}",
                                      units[name.group(1)]))
    return found


def test_no_role_writes_a_layout_literal() -> None:
    assert offences(ANSIBLE_DIR) == []


def test_every_role_part_is_scanned() -> None:
    # A guard that reads nothing finds nothing: each role's tasks are among the files.
    roles = {p.parent.parent.name for p in scanned_files(ANSIBLE_DIR) if p.parent.name == "tasks"}
    assert roles == {p.name for p in (ANSIBLE_DIR / "roles").iterdir()}


@pytest.fixture
def playbook(tmp_path: Path) -> Path:
    root = tmp_path / "ansible"
    shutil.copytree(ANSIBLE_DIR, root, symlinks=True)
    return root


def _plant(root: Path, relative: str, text: str) -> str:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = path.read_text().splitlines() if path.exists() else []
    path.write_text("\n".join([*lines, text]) + "\n")
    return f"{relative}:{len(lines) + 1}: "


@pytest.mark.parametrize(("relative", "text", "field"), [
    ("roles/tls/tasks/certificate.yml", '    dest: /etc/backend-chat/tls/server.key', "tls_key"),
    ("roles/tls/tasks/certificate.yml", '    dest: "{{ tls_dir }}/server.key"', "tls_key"),
    ("roles/common/templates/sysctl.conf.j2", "kernel.kptr_restrict = 2", "kernel_settings"),
    ("roles/common/defaults/main.yml", "common_dir: /etc/backend-chat", "config_dir"),
    ("roles/app/templates/backend-chat.service.j2", "ReadOnlyPaths=/etc/backend-chat/x",
     "config_dir"),
    ("roles/app/handlers/main.yml", "    name: backend-chat.service", "app_unit"),
    ("roles/egress/handlers/main.yml", "    name: squid", "proxy_unit"),
    ("roles/backup/templates/backend-chat-backup.sh.j2", "systemctl start squid", "proxy_unit"),
    ("roles/app/templates/backend-chat.service.j2", "User=backendchat", "app_user"),
    ("roles/redis/vars/main.yml", "redis_conf: '/etc/redis/redis.conf'", "redis_config"),
    ("roles/nginx/files/extra.conf", "include /etc/nginx/conf.d/backend-chat.conf;",
     "nginx_site_file"),
    ("site.yml", "      record_file: /etc/backend-chat/deployment.json", "deployment_record"),
])
def test_a_planted_literal_is_named_with_its_file_and_line(
        playbook: Path, relative: str, text: str, field: str) -> None:
    where = _plant(playbook, relative, text)
    found = offences(playbook)
    # Only the planted line is named, and among its offences the field it repeats.
    assert {f.split(" ")[0] for f in found} == {where.strip()}, found
    assert any(f"HostLayout.{field}" in f for f in found), found


@pytest.mark.parametrize("text", [
    "/etc/backend-chat-old/x",            # another directory
    "/etc/redis/redis.conf.orig",         # another file
    "name: squid-helper",                 # another unit
    "/srv/etc/backend-chat",              # another tree
    "    dest: \"{{ postgresql_conf_dir }}/tls/server.key\"",  # PostgreSQL's own copy
    "egress_proxy_packages: [squid]",     # a package, not a unit
    "backendchat_extra: 1",               # a longer name
])
def test_names_that_only_look_alike_pass(playbook: Path, text: str) -> None:
    _plant(playbook, "roles/common/defaults/main.yml", text)
    assert offences(playbook) == []
