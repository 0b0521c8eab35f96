"""Reconciliation reads where nftables lets the app user go: recorded rulesets in the
shape `nft -j list ruleset` gives them (as the collector hands them over)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from selfhost.paths import preset_path
from selfhost.plan import Plan, plan
from selfhost.profile_io import load_profile
from selfhost.verify import nft_rules
from selfhost.verify.contract import Facts
from selfhost.verify.reconcile import compare_host, known_vendors


def app_user_accepts(nft: dict[str, Any], user: str) -> list[nft_rules.Accept]:
    return nft_rules.app_user_accepts(nft["output_rules"], nft["chain_rules"], user)

USER = "backendchat"
OUTPUT = "inet backend_chat/output"
FENCE = "inet backend_chat/app_egress"


def _match(left: dict[str, Any], right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _port(right: Any) -> dict[str, Any]:
    return _match({"payload": {"protocol": "tcp", "field": "dport"}}, right)


def _daddr(right: Any) -> dict[str, Any]:
    return _match({"payload": {"protocol": "ip", "field": "daddr"}}, right)


def _owner(user: str) -> dict[str, Any]:
    return _match({"meta": {"key": "skuid"}}, user)


ACCEPT: dict[str, Any] = {"accept": None}
ESTABLISHED = [_match({"ct": {"key": "state"}}, ["established", "related"], "in"), ACCEPT]


def ruleset(direct: list[list[Any]] | None = None) -> dict[str, Any]:
    """The deployed ruleset of an app host: the app user jumps to its fence, which lets
    it reach the loopback proxy, database and cache (and ``direct`` rules), then drops."""
    output = [ESTABLISHED, [_owner(USER), {"jump": {"target": "app_egress"}}],
              [_port(22), ACCEPT]]
    fence = [[_match({"meta": {"key": "oif"}}, "lo"), _port({"set": [3128, 5432, 6379]}),
              ACCEPT], *(direct or []),
             [{"limit": {"rate": 10, "per": "minute"}}, {"log": {"prefix": "egress drop"}}],
             [{"counter": None}, {"drop": None}]]
    return {"chains": [{"family": "inet", "table": "backend_chat", "name": "output",
                        "hook": "output", "policy": "accept"}],
            "output_rules": {OUTPUT: output},
            "chain_rules": {OUTPUT: output, FENCE: fence}}


def test_the_deployed_fence_lets_the_app_user_only_onto_loopback() -> None:
    accepts = app_user_accepts(ruleset(), USER)
    assert [(a.chain, a.position, a.stays_on_the_host()) for a in accepts] == [
        (FENCE, 1, True)]


def test_an_accept_added_to_the_fence_is_a_destination() -> None:
    nft = ruleset()
    nft["chain_rules"][FENCE].insert(0, [_daddr("203.0.113.7"), _port(443), ACCEPT])
    outside = [a for a in app_user_accepts(nft, USER) if not a.stays_on_the_host()]
    assert [(a.position, a.destinations()) for a in outside] == [(1, ["203.0.113.7:443"])]


@pytest.mark.parametrize(("owner", "found"), [(USER, ["*:443"]), (None, ["*:443"]),
                                               ("postgres", [])])
def test_an_accept_before_the_jump_counts_unless_it_is_another_users(
        owner: str | None, found: list[str]) -> None:
    nft = ruleset()
    rule = [*([_owner(owner)] if owner else []), _port(443), ACCEPT]
    nft["output_rules"][OUTPUT].insert(1, rule)
    outside = [d for a in app_user_accepts(nft, USER) if not a.stays_on_the_host()
               for d in a.destinations()]
    assert outside == found


def test_sets_and_prefixes_are_each_a_destination() -> None:
    nft = ruleset([[_daddr({"set": ["198.51.100.1", {"prefix": {"addr": "10.9.0.0",
                                                                   "len": 16}}]}),
                    _port({"set": [80, 443]}), ACCEPT]])
    outside = [d for a in app_user_accepts(nft, USER) if not a.stays_on_the_host()
               for d in a.destinations()]
    assert outside == ["198.51.100.1:80", "198.51.100.1:443", "10.9.0.0/16:80",
                       "10.9.0.0/16:443"]


# -- through reconciliation ------------------------------------------------------------

def _facts(p: Plan, host: str, nft: dict[str, Any]) -> Facts:
    """An app host whose record, environment and proxy match the Plan exactly."""
    target = next(h for h in p.hosts if h.name == host)
    party_keys = {k: "set" for party in p.third_parties for k in party.wired_by}
    allow = [f"acl a{i} dstdomain {e.host}\nacl p{i} port {e.port}\nhttp_access allow a{i} "
             f"p{i}" for i, e in enumerate(p.egress_allowlist)]
    record = {"host": host, "customer_id": p.customer.id,
              "profile_fingerprint": p.profile_fingerprint, "topology": p.topology,
              "components": list(target.components),
              "egress_allowlist": sorted(str(e) for e in p.egress_allowlist),
              "third_parties": p.third_party_ids(), "env_keys": sorted(p.app.env_keys)}
    return Facts({
        "record": {"exists": True, "data": record},
        # Only AI_PROVIDER's value is read; the rest are keys.
        "app": {"env": {**dict.fromkeys(p.app.env_keys, "set"), **party_keys,
                        "AI_PROVIDER": next(e.value for e in p.app.env
                                            if e.key == "AI_PROVIDER")},
                "url_hosts": {}},
        "egress": {"allowlist_lines": "\n".join([*allow, "http_access deny all"]
                                                ).splitlines()},
        "nftables": nft})


def _differences(preset: str, nft: dict[str, Any]) -> list[str]:
    profile = load_profile(preset_path(preset))
    p = plan(profile)
    host = p.hosts_with("app")[0].name
    return [d.render() for d in compare_host(p, host, _facts(p, host, nft), known_vendors(profile))]


def test_a_host_that_matches_has_no_difference() -> None:
    assert _differences("us-openai", ruleset()) == []


def test_an_unlisted_address_reachable_through_nftables_is_named() -> None:
    nft = ruleset([[_daddr("203.0.113.7"), _port(443), ACCEPT]])
    assert _differences("us-openai", nft) == [
        f"chat1: unknown third party (203.0.113.7:443): reachable but not listed: nftables "
        f"lets {USER} connect to 203.0.113.7:443 ({FENCE} rule 2)"]


def test_the_split_hosts_direct_database_and_cache_are_the_plans() -> None:
    p = plan(load_profile(preset_path("split")))
    direct = [[_daddr(e.host), _port(e.port), ACCEPT] for e in p.app_direct]
    stray = [_daddr(p.app_direct[0].host), _port(22), ACCEPT]
    assert (_differences("split", ruleset(direct)),
            _differences("split", ruleset([*direct, stray]))) == (
        [], [f"app1: unknown third party ({p.app_direct[0].host}:22): reachable but not "
             f"listed: nftables lets {USER} connect to {p.app_direct[0].host}:22 "
             f"({FENCE} rule {len(direct) + 2})"])


def test_a_ruleset_that_cannot_be_read_is_a_difference() -> None:
    assert _differences("us-openai", {"error": "nft: permission denied"}) == [
        "chat1: nftables ruleset: could not be read: nft: permission denied"]


def test_the_recorded_ruleset_is_not_changed_by_reading_it() -> None:
    nft = ruleset([[_daddr("203.0.113.7"), _port(443), ACCEPT]])
    before = copy.deepcopy(nft)
    app_user_accepts(nft, USER)
    assert nft == before
