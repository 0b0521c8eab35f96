"""Recognising a guest's nspawn process by its command line: pure logic."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfhost.sandbox.guest import needles, nspawn_argv, rootfs_dir


def _cmdline(guest_dir: Path) -> str:
    # As /proc/PID/cmdline reads once its NULs are spaces.
    return " ".join(nspawn_argv(rootfs_dir(guest_dir), guest_dir.name, "br0")) + " "


def test_guest_matches_its_own_process() -> None:
    guest = Path("/s/sandboxes/a/guests/a-1")
    assert all(n in _cmdline(guest) for n in needles(guest))


@pytest.mark.parametrize(
    "other",
    [
        Path("/s/sandboxes/a/guests/a-11"),
        Path("/t/s/sandboxes/a/guests/a-1"),
        Path("/s/sandboxes/a/guests/a-1x"),
    ],
)
def test_guest_does_not_match_a_similar_one(other: Path) -> None:
    guest = Path("/s/sandboxes/a/guests/a-1")
    assert not all(n in _cmdline(other) for n in needles(guest))


@pytest.mark.parametrize(
    "option", ["--boot", "--register=no", "--keep-unit", "--console=passive",
               "--network-bridge=br0"],
)
def test_nspawn_options(option: str) -> None:
    assert option in nspawn_argv(Path("/r"), "g", "br0")
