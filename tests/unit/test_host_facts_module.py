"""The common role's fact module: installed packages and IPv6 from the host's own output."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest

DPKG_QUERY = (
    "installed\tnginx\n"
    "config-files\tapache2\n"
    "half-configured\tpostgresql-15\n"
    "installed\tlibc6\n"
    "installed\tlibc6\n"  # multi-arch: one line per architecture
    "not-installed\tredis-server\n"
    "\n"
)
LOOPBACK = "00000000000000000000000000000001 01 80 10 80       lo\n"
LINK_LOCAL = "fe80000000000000021122fffe334455 02 40 20 80     eth0\n"


@pytest.fixture(scope="module")
def module(role_module: Callable[[str, str], ModuleType]) -> ModuleType:
    return role_module("common", "selfhost_host_facts")


def test_only_fully_installed_packages_count(module: ModuleType) -> None:
    assert module.installed_packages(DPKG_QUERY) == ["libc6", "nginx"]


@pytest.mark.parametrize(("table", "expected"), [
    ("", False),
    (LOOPBACK, False),
    (LOOPBACK + LINK_LOCAL, True),
    ("\n" + LINK_LOCAL, True),
], ids=["ipv6-disabled", "loopback-only", "link-local", "blank-line"])
def test_ipv6_means_an_address_beyond_loopback(module: ModuleType, table: str,
                                                expected: bool) -> None:
    assert module.has_ipv6(table) is expected
