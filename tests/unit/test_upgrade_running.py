"""Which release runs, read from the hosts' facts, and when an upgrade may start."""

from __future__ import annotations

from typing import Any

import pytest

from selfhost.errors import InvalidInput
from selfhost.upgrade.running import HostFacts, running_release


def _app(name: str, current: str) -> HostFacts:
    return HostFacts(name=name, app=True, database=False, current=current, previous="",
                     free_bytes=10**10, database_bytes=0, state={})


def _db(state: dict[str, Any]) -> HostFacts:
    return HostFacts(name="db1", app=False, database=True, current="", previous="",
                     free_bytes=10**10, database_bytes=10**6, state=state)


def test_every_app_host_on_one_release() -> None:
    assert running_release([_app("a1", "1.0"), _app("a2", "1.0")], _db({}), "2.0") == (
        "1.0", {})


def test_a_finished_upgrade_is_not_resumed() -> None:
    done = {"from": "1.0", "to": "2.0", "finished": True}
    assert running_release([_app("a1", "2.0")], _db(done), "3.0") == ("2.0", {})


def test_hosts_on_different_releases_are_refused() -> None:
    with pytest.raises(InvalidInput, match=r"different releases \(a1: 1.0, a2: 2.0\)"):
        running_release([_app("a1", "1.0"), _app("a2", "2.0")], _db({}), "2.0")


def test_a_host_without_a_release_is_refused() -> None:
    with pytest.raises(InvalidInput, match="app hosts a2 run no release of their own"):
        running_release([_app("a1", "1.0"), _app("a2", "")], _db({}), "2.0")


def test_an_unfinished_upgrade_resumes_from_its_own_start() -> None:
    state = {"from": "1.0", "to": "2.0", "finished": False, "migrations_done": []}
    # killed mid-switch: one host already on the new release
    assert running_release([_app("a1", "2.0"), _app("a2", "1.0")], _db(state), "2.0") == (
        "1.0", state)


def test_an_unfinished_upgrade_blocks_another_release() -> None:
    state = {"from": "1.0", "to": "2.0", "finished": False}
    with pytest.raises(InvalidInput, match=r"upgrade to 2\.0 again to resume it, or run "
                                           r"`selfhost rollback`"):
        running_release([_app("a1", "1.0")], _db(state), "2.1")
