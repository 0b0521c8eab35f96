"""The egress role's fact module: apt's proxy or mirrors and the resolvers, from the
host's own configuration."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

APT_DUMP_WITH_PROXY = (
    'Acquire::http::Proxy "http://10.213.78.1:3142";\n'
    'Acquire::http::Proxy::security.example.org "DIRECT";\n'
    'APT::Architecture "amd64";\n'
)
APT_DUMP_WITHOUT = 'APT::Architecture "amd64";\nAcquire::https::Proxy "DIRECT";\n'


@pytest.fixture(scope="module")
def module(role_module: Callable[[str, str], ModuleType]) -> ModuleType:
    return role_module("egress", "selfhost_egress_facts")


@pytest.fixture
def etc_apt(tmp_path: Path) -> Path:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example.org/debian bookworm main\n"
        "deb [signed-by=/usr/share/keyrings/k.gpg arch=amd64] http://deb.example.org/debian "
        "bookworm main\n"
        "deb-src http://deb.example.org/debian bookworm main\n"
        "deb file:/srv/local ./\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: https://mirror.example.net:8443/debian http://deb.example.org/debian\n"
        "Suites: bookworm-updates\n")
    return tmp_path


def test_a_proxy_carries_its_scheme(module: ModuleType, etc_apt: Path) -> None:
    uris = module.source_uris(etc_apt)
    assert module.apt_endpoints(APT_DUMP_WITH_PROXY, uris) == [
        ("10.213.78.1", 3142), ("mirror.example.net", 8443)]


def test_without_a_proxy_each_mirror_is_contacted(module: ModuleType, etc_apt: Path) -> None:
    uris = module.source_uris(etc_apt)
    assert module.apt_endpoints(APT_DUMP_WITHOUT, uris) == [
        ("deb.example.org", 80), ("mirror.example.net", 8443)]


def test_resolvers_leave_out_a_local_stub(module: ModuleType) -> None:
    stub = "nameserver 127.0.0.53\noptions edns0\n"
    upstream = "# upstream\nnameserver 192.0.2.53\nnameserver fe80::1%host0\nnameserver ::1\n"
    assert module.resolvers([stub, upstream, upstream]) == ["192.0.2.53", "fe80::1"]
