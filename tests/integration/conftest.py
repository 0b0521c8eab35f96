"""Fixtures giving integration tests real sandbox guests, always torn down.

The sandbox runs in a state dir of its own (so its bridge, apt cache and addresses
never touch a developer's `selfhost sandbox` guests) but shares the rootfs cache, so
only the first run on a machine pays for debootstrap. Missing root or host packages
FAIL the tests with the fix, never skip them: CI treats a skip as a failure.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from selfhost import sandbox
from selfhost.errors import PrerequisiteMissing
from selfhost.sandbox import prereqs
from selfhost.sandbox.network import overlapping_routes

TEST_SUBNET_ENV = "SELFHOST_TEST_SANDBOX_SUBNET"

SandboxFactory = Callable[..., sandbox.Sandbox]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything in this directory needs root and real guests.
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


#: the third octets test subnets come from, 10.213.60-99.0/24
TEST_SUBNETS = range(60, 100)


def _worker_index() -> int:
    """This pytest-xdist worker's number (``gw3`` -> 3); 0 without xdist."""
    number = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    return int(number) if number.isdigit() else 0


def _worker_subnets() -> list[int]:
    """:data:`TEST_SUBNETS`, each pytest-xdist worker starting at its own share: workers
    start at the same instant, so two scanning from one place could both take the first
    free subnet before either had made its bridge."""
    count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), 1)
    start = (_worker_index() % count) * (len(TEST_SUBNETS) // count)
    return list(TEST_SUBNETS[start:]) + list(TEST_SUBNETS[:start])


def free_test_subnet(skip: str | None = None) -> str:
    """``$SELFHOST_TEST_SANDBOX_SUBNET``, else the first of 10.213.60-99.0/24 no route uses,
    so test sessions running side by side (each with its own bridge) do not collide."""
    if (env := os.environ.get(TEST_SUBNET_ENV)) and skip is None:
        # One subnet named for the whole run: each xdist worker takes the next one up.
        net = ipaddress.IPv4Network(env)
        index = _worker_index()
        return str(ipaddress.IPv4Network(
            (int(net.network_address) + index * net.num_addresses, net.prefixlen)))
    routes = json.loads(subprocess.run(["ip", "-j", "-4", "route", "show"], check=True,
                                       capture_output=True, text=True).stdout or "[]")
    for third in _worker_subnets():
        net = ipaddress.IPv4Network(f"10.213.{third}.0/24")
        if str(net) != skip and not overlapping_routes(net, routes, bridge=""):
            return str(net)
    pytest.fail("no free 10.213.60-99.0/24 subnet for the test sandbox; set "
                f"{TEST_SUBNET_ENV}", pytrace=False)


def require_prerequisites() -> None:
    try:
        prereqs.check()
    except PrerequisiteMissing as exc:
        pytest.fail(f"sandbox integration tests cannot run here:\n{exc.message}", pytrace=False)


@pytest.fixture(scope="session")
def sandbox_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private sandbox state dir and subnet for this test session; yields the state dir."""
    require_prerequisites()
    state = tmp_path_factory.mktemp("sandbox-state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SELFHOST_SANDBOX_DIR", str(state))
        mp.setenv("SELFHOST_SANDBOX_SUBNET", free_test_subnet())
        mp.delenv("SELFHOST_SANDBOX_BRIDGE", raising=False)
        try:
            yield state
        finally:
            # Whatever a test left behind, including a network from a failed up.
            sandbox.down_all()


#: names of the sandboxes this process made and has not downed yet, oldest first
_made: list[str] = []


def _down_since(mark: int) -> None:
    """Down the sandboxes made after the first ``mark`` (newest first), every one of
    them even when one fails."""
    problems = []
    while len(_made) > mark:
        name = _made.pop()
        try:
            sandbox.down(name)
        except Exception as exc:  # every sandbox must get its chance
            problems.append(f"{name}: {exc}")
    if problems:
        pytest.fail("sandbox teardown failed:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def sandbox_factory(sandbox_env: Path) -> Iterator[SandboxFactory]:
    """``make(name, hosts=1, release=None, image="base") -> Sandbox``; every sandbox made
    is downed when the test file that made it ends (or at session end), even when tests
    fail. ``image="server"`` (the all-in-one packages preinstalled) is for files whose
    subject is not the install path or its removal: test_deploy and test_destroy keep
    fresh hosts."""

    def make(name: str, hosts: int = 1, release: str | None = None, image: str = "base"
             ) -> sandbox.Sandbox:
        if name not in _made:
            _made.append(name)
        return sandbox.up(name, hosts, release, image=image)

    yield make
    _down_since(0)


@pytest.fixture(scope="module", autouse=True)
def _guests_end_with_their_file() -> Iterator[None]:
    """No test file uses another's guests: once a file is done its guests go, so a long
    session does not keep dozens of deployed hosts running (memory, CPU, and every
    process-list scan of the later tests). Autouse, so set up before and torn down
    after the file's own fixtures, which may still need the guests."""
    mark = len(_made)
    yield
    _down_since(mark)


@contextlib.contextmanager
def _isolated(base: Path) -> Iterator[Path]:
    state = Path(tempfile.mkdtemp(prefix="isolated-", dir=base))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SELFHOST_SANDBOX_DIR", str(state))
        mp.setenv("SELFHOST_SANDBOX_SUBNET",
                  free_test_subnet(skip=os.environ.get("SELFHOST_SANDBOX_SUBNET")))
        try:
            yield state
        finally:
            sandbox.down_all()


@pytest.fixture(scope="session")
def isolated_sandbox_env(
    sandbox_env: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], contextlib.AbstractContextManager[Path]]:
    """``with isolated_sandbox_env() as state:`` switches to an empty state dir with a
    subnet and bridge of its own until the block ends (then everything in it is downed),
    for tests that must see the last sandbox go while other sandboxes keep running."""
    base = tmp_path_factory.mktemp("sandbox-isolated")
    return lambda: _isolated(base)
