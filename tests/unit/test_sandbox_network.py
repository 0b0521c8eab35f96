"""Address allocation, subnet configuration and route clashes: pure logic."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from selfhost.errors import InvalidInput, SelfhostError
from selfhost.sandbox.network import (
    BRIDGE,
    allocate_addresses,
    bridge_address,
    bridge_name,
    configured_subnet,
    overlapping_routes,
)
from selfhost.sandbox.state import DEFAULT_STATE_DIR, Paths

NET = ipaddress.IPv4Network("10.213.47.0/24")


@pytest.mark.parametrize(
    ("taken", "count", "expected"),
    [
        ([], 2, ["10.213.47.2", "10.213.47.3"]),
        (["10.213.47.2"], 1, ["10.213.47.3"]),
        (["10.213.47.2", "10.213.47.4"], 2, ["10.213.47.3", "10.213.47.5"]),
        ([], 0, []),
    ],
)
def test_allocation_picks_lowest_free(taken: list[str], count: int, expected: list[str]) -> None:
    assert allocate_addresses(NET, taken, count) == expected


def test_allocation_never_hands_out_the_bridge_address() -> None:
    assert bridge_address(NET) not in allocate_addresses(NET, [], 253)


def test_allocation_fails_when_the_subnet_is_full() -> None:
    taken = [str(h) for h in NET.hosts()]
    with pytest.raises(SelfhostError, match="free addresses"):
        allocate_addresses(NET, taken, 1)


@pytest.mark.parametrize("value", ["10.0.0.0/16", "8.8.8.0/24", "not-a-net", "10.1.2.3/24"])
def test_bad_subnet_is_invalid_input(value: str) -> None:
    with pytest.raises(InvalidInput, match="SELFHOST_SANDBOX_SUBNET"):
        configured_subnet(value)


def test_subnet_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELFHOST_SANDBOX_SUBNET", "192.168.77.0/24")
    assert configured_subnet() == ipaddress.IPv4Network("192.168.77.0/24")


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        ([{"dst": "default", "dev": "eth0"}], []),
        ([{"dst": "192.0.2.0/24", "dev": "eth0"}], []),
        ([{"dst": "10.213.47.0/24", "dev": BRIDGE}], []),
        ([{"dst": "10.213.47.0/24", "dev": "eth1"}], ["10.213.47.0/24 dev eth1"]),
        ([{"dst": "10.0.0.0/8", "dev": "wg0"}], ["10.0.0.0/8 dev wg0"]),
        ([{"dst": "10.213.47.9", "dev": "tun0"}], ["10.213.47.9 dev tun0"]),
    ],
)
def test_route_clashes(routes: list[dict[str, object]], expected: list[str]) -> None:
    assert overlapping_routes(NET, routes) == expected


def test_default_state_dir_uses_the_default_bridge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SELFHOST_SANDBOX_BRIDGE", raising=False)
    assert bridge_name(Paths(DEFAULT_STATE_DIR, Path("/c"))) == BRIDGE


def test_other_state_dir_gets_its_own_bridge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SELFHOST_SANDBOX_BRIDGE", raising=False)
    assert bridge_name(Paths(Path("/tmp/x"), Path("/c"))) != BRIDGE


def test_bridge_name_from_environment_must_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELFHOST_SANDBOX_BRIDGE", "a-much-too-long-bridge-name")
    with pytest.raises(InvalidInput, match="SELFHOST_SANDBOX_BRIDGE"):
        bridge_name(Paths(Path("/tmp/x"), Path("/c")))
