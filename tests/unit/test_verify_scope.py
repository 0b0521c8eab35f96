"""egress.scope: with scope host the output chain drops every user's new connections by
default; with either scope the app user jumps to a chain that ends in a drop."""

from __future__ import annotations

from typing import Any

import pytest
from test_verify_fence import ESTABLISHED, JUMP

from selfhost.paths import preset_path
from selfhost.plan import plan
from selfhost.profile_io import load_profile
from selfhost.verify.components import generate
from selfhost.verify.contract import AnyCheck, Facts

# Rules as `nft -j list ruleset` gives their "expr".
PROXY: list[Any] = [
    {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "lo"}},
    {"accept": None}]
LOG: list[Any] = [{"limit": {"rate": 10, "per": "second"}},
                  {"log": {"prefix": "backend-chat output drop: "}}]
COUNT: list[Any] = [{"counter": {"packets": 0, "bytes": 0}}]
DROP: list[Any] = [{"counter": {"packets": 0, "bytes": 0}}, {"drop": None}]
ACCEPT_ALL: list[Any] = [{"accept": None}]
OUTPUT = "inet backend_chat/output"


def _check(scope: str) -> AnyCheck:
    profile = load_profile(preset_path("us-openai"))
    profile.egress.scope = scope  # type: ignore[assignment]
    return next(c for c in generate(plan(profile)) if c.id == "egress.scope")


def _facts(policy: str, output: list[list[Any]],
           app_egress: list[list[Any]]) -> Facts:
    return Facts({"nftables": {
        "chains": [{"family": "inet", "table": "backend_chat", "name": "output",
                    "hook": "output", "policy": policy},
                   {"family": "inet", "table": "backend_chat", "name": "app_egress",
                    "hook": None, "policy": None}],
        "skuid_rules": [], "output_rules": {OUTPUT: output},
        "chain_rules": {OUTPUT: output, "inet backend_chat/app_egress": app_egress}}})


DEPLOYED_HOST = ("drop", [ESTABLISHED, JUMP, PROXY, LOG, COUNT], [PROXY, LOG, DROP])
DEPLOYED_APP = ("accept", [ESTABLISHED, JUMP], [PROXY, LOG, DROP])


@pytest.mark.parametrize(("scope", "facts"), [("host", DEPLOYED_HOST), ("app", DEPLOYED_APP),
                                               ("app", DEPLOYED_HOST)],
                         ids=["host", "app", "app-on-a-host-scope-firewall"])
def test_the_deployed_rules_pass(scope: str, facts: tuple[Any, ...]) -> None:
    outcome = _check(scope).evaluate(_facts(*facts))
    assert outcome.passed, outcome.found


@pytest.mark.parametrize(("facts", "found"), [
    (("accept", [ESTABLISHED, JUMP, PROXY, LOG, COUNT], [PROXY, LOG, DROP]),
     f"no output chain drops by default for every user (output chains: {OUTPUT} policy "
     "accept)"),
    (("drop", [ESTABLISHED, JUMP, PROXY, LOG, COUNT, ACCEPT_ALL], [PROXY, LOG, DROP]),
     f"no output chain drops by default for every user (output chains: {OUTPUT} policy "
     "drop with an accept-all rule)"),
], ids=["policy-accept", "accept-all-appended"])
def test_scope_host_fails_when_the_output_chain_lets_everyone_out(
        facts: tuple[Any, ...], found: str) -> None:
    outcome = _check("host").evaluate(_facts(*facts))
    assert (outcome.passed, outcome.found) == (False, found)


@pytest.mark.parametrize("scope", ["app", "host"])
@pytest.mark.parametrize("app_egress", [[PROXY, LOG], [PROXY, LOG, DROP, ACCEPT_ALL], []],
                         ids=["no-final-drop", "accept-all-after-the-drop", "no-chain"])
def test_an_app_user_chain_that_does_not_end_in_a_drop_fails(
        scope: str, app_egress: list[list[Any]]) -> None:
    outcome = _check(scope).evaluate(_facts("drop", [ESTABLISHED, JUMP, LOG, COUNT], app_egress))
    assert (outcome.passed, outcome.found) == (
        False, "backendchat is not fenced: no output chain jumps it to a chain that ends in "
               "a drop")
