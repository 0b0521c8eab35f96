"""Values that would fight the host: colliding derived names, ports, backup paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from input_support import PROFILE, validate

from selfhost.profile_io import load_profile

SPLIT = """\
customer:
  name: ACME
  id: acme
  contact_email: dpo@acme.example
  residency: DE
topology: split
hosts:
  app:
    - name: app-1
      address: 192.0.2.10
    - name: app.1
      address: 192.0.2.11
  database:
    name: db1
    address: 192.0.2.20
  cache:
    name: cache1
    address: 192.0.2.21
tls:
  domain: chat.acme.example
"""


def test_host_names_that_map_to_one_variable_name_are_refused(tmp_path: Path) -> None:
    assert validate(tmp_path, SPLIT) == (
        2, "P:7: hosts: host names 'app-1' and 'app.1' both become APP_1 in variable and "
           "file names (rename one of them)")


@pytest.mark.parametrize(("port", "user"), [
    ("3128", "the egress proxy"), ("443", "nginx (HTTPS)"), ("80", "nginx (HTTP)"),
    ("22", "ssh on chat1"), ("5432", "the database (database.port)"),
    ("6379", "the cache (cache.port)"),
])
def test_app_port_must_differ_from_every_other_port_on_the_host(
        tmp_path: Path, port: str, user: str) -> None:
    assert validate(tmp_path, PROFILE + f"app:\n  port: {port}\n") == (
        2, f"P:13: app.port: port {port} is already used by {user} on the app host (choose "
           "another app.port, e.g. 8000)")


@pytest.mark.parametrize(("directory", "where"), [
    ("/etc", "inside /etc"),
    ("/var/backups/../../etc/cron.d", "inside /etc"),
    ("/var/lib/postgresql/15/main", "inside /var/lib/postgresql"),
    ("//usr/local", "inside /usr"),
    ("/var/lib", "a system directory"),
    ("/root/", "a system directory"),
])
def test_backups_directory_stays_out_of_system_directories(
        tmp_path: Path, directory: str, where: str) -> None:
    assert validate(tmp_path, PROFILE + f"backups:\n  directory: {directory}\n") == (
        2, f"P:13: backups.directory: {directory!r} is {where}, which backups must not take "
           "over (use a directory of its own, e.g. /var/backups/backend-chat)")


def test_backups_directory_is_normalised(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(PROFILE + "backups:\n  directory: /srv//backups/./chat/\n")
    assert load_profile(path).backups.directory == "/srv/backups/chat"
