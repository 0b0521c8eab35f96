"""egress.fence_first: the app user's jump comes before every accept of the output
path that could serve a new connection."""

from __future__ import annotations

from typing import Any

import pytest

from selfhost.paths import preset_path
from selfhost.plan import plan
from selfhost.profile_io import load_profile
from selfhost.verify.components import generate
from selfhost.verify.contract import AnyCheck, Facts

# Rules as `nft -j list ruleset` gives their "expr".
ESTABLISHED: list[Any] = [
    {"match": {"op": "in", "left": {"ct": {"key": "state"}},
               "right": ["established", "related"]}}, {"accept": None}]
JUMP: list[Any] = [
    {"match": {"op": "==", "left": {"meta": {"key": "skuid"}}, "right": "backendchat"}},
    {"jump": {"target": "app_egress"}}]
SSH_SPORT: list[Any] = [
    {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "sport"}},
               "right": 22}}, {"accept": None}]
NEW_ONLY: list[Any] = [
    {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["new"]}},
    {"accept": None}]


def _check() -> AnyCheck:
    p = plan(load_profile(preset_path("us-openai")))
    return next(c for c in generate(p) if c.id == "egress.fence_first")


def _facts(*rules: list[Any]) -> Facts:
    return Facts({"nftables": {"output_rules": {"inet backend_chat/output": list(rules)},
                         "chains": [], "skuid_rules": []}})


def test_jump_right_after_established_passes() -> None:
    assert _check().evaluate(_facts(ESTABLISHED, JUMP, SSH_SPORT)).passed


@pytest.mark.parametrize("rules", [(ESTABLISHED, SSH_SPORT, JUMP), (SSH_SPORT, ESTABLISHED, JUMP),
                                   (ESTABLISHED, NEW_ONLY, JUMP)],
                         ids=["ssh-sport-first", "at-the-head", "new-state-accept"])
def test_an_accept_before_the_jump_fails_and_is_named(rules: tuple[list[Any], ...]) -> None:
    outcome = _check().evaluate(_facts(*rules))
    position = rules.index(JUMP) + 1
    assert (outcome.passed, f"accepts before the jump for backendchat (rule {position})"
            in outcome.found) == (False, True)


def test_no_jump_at_all_fails() -> None:
    outcome = _check().evaluate(_facts(ESTABLISHED, SSH_SPORT))
    assert (outcome.passed, outcome.found) == (False, "no output chain matches the app user "
                                                      "backendchat")
