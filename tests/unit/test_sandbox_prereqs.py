"""The prerequisite check and its message: pure logic, no real machine inspected."""

from __future__ import annotations

import pytest

from selfhost.sandbox.prereqs import Missing, find_missing, install_command, message


def _missing(absent: set[str], *, euid: int = 0, bridge: bool = True) -> list[Missing]:
    return find_missing(euid=euid, which=lambda c: None if c in absent else f"/usr/bin/{c}",
                        has_bridge=bridge)


def test_nothing_missing() -> None:
    assert _missing(set()) == []


@pytest.mark.parametrize(
    ("absent", "package"),
    [
        ({"debootstrap"}, "debootstrap"),
        ({"systemd-nspawn"}, "systemd-container"),
        ({"apt-cacher-ng"}, "apt-cacher-ng"),
        ({"zstd"}, "zstd"),
        ({"ip"}, "iproute2"),
        ({"ssh-keygen"}, "openssh-client"),
    ],
)
def test_missing_command_names_its_package(absent: set[str], package: str) -> None:
    assert install_command(_missing(absent))[-1] == package


def test_install_command_lists_each_package_once() -> None:
    cmd = install_command(_missing({"ssh", "ssh-keygen", "zstd"}))
    assert cmd == ["apt-get", "install", "-y", "--no-install-recommends",
                   "zstd", "openssh-client"]


@pytest.mark.parametrize(
    "expected",
    [
        "apt-get install -y --no-install-recommends debootstrap systemd-container",
        "--install-prereqs",
        "`debootstrap`",
    ],
)
def test_message_says_what_and_how(expected: str) -> None:
    assert expected in message(_missing({"debootstrap", "systemd-nspawn"}))


def test_non_root_is_reported() -> None:
    assert "run as root" in message(_missing(set(), euid=1000))


def test_missing_bridge_support_is_reported() -> None:
    assert "CONFIG_BRIDGE" in message(_missing(set(), bridge=False))
