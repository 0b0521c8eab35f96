"""Reading nftables rules as ``nft -j list ruleset`` gives their expressions. Pure.

The egress checks ask what a chain does to the app user's packets: which rule
jumps them to their own chain, whether that chain ends by dropping, and
whether an earlier rule could accept a new connection first; reconciliation asks
where the app user's new connections may go at all.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import cast

Expr = list[object]


def _steps(expr: Expr) -> list[dict[str, object]]:
    return [s for s in expr if isinstance(s, dict)]


def only_established(expr: Expr) -> bool:
    """A rule that matches established/related connections only (it cannot accept
    a new connection, whoever owns it)."""
    for step in _steps(expr):
        match = cast(dict[str, object], step.get("match", {}))
        if match.get("left") == {"ct": {"key": "state"}}:
            right = match.get("right")
            states = {right} if isinstance(right, str) else set(cast(list[str], right or []))
            return bool(states) and states <= {"established", "related"}
    return False


def jumps_by_owner(expr: Expr) -> bool:
    """``meta skuid ... jump CHAIN``: the rule that sends the app user's packets to
    its own chain (nft shows the user by name or by uid)."""
    steps = _steps(expr)
    owner = any(cast(dict[str, object], s.get("match", {})).get("left")
                == {"meta": {"key": "skuid"}} for s in steps)
    return owner and any("jump" in s for s in steps)


def accepts(expr: Expr) -> bool:
    return {"accept": None} in _steps(expr)


def verdict_only(expr: Expr, verdict: str) -> bool:
    """A rule that gives ``verdict`` to every packet: nothing before it selects
    packets (a counter or a log line does not; a match or a rate limit does)."""
    steps = _steps(expr)
    return ({verdict: None} in steps
            and not any(k in s for s in steps for k in ("match", "limit", "jump", "goto")))


def fence(chain: str, rules: list[Expr], chain_rules: dict[str, list[Expr]]) -> str | None:
    """The chain the app user's packets jump to from ``chain``, when it ends by
    dropping everything it did not accept."""
    family_table = chain.split("/", 1)[0]
    for expr in rules:
        if not jumps_by_owner(expr):
            continue
        target = next(cast(dict[str, dict[str, str]], s)["jump"]["target"]
                      for s in _steps(expr) if "jump" in s)
        jumped = chain_rules.get(f"{family_table}/{target}", [])
        if jumped and verdict_only(jumped[-1], "drop"):
            return f"{family_table}/{target}"
    return None


# -- where the app user's new connections may go ------------------------------------------

ANY = "*"


@dataclass(frozen=True)
class Accept:
    """One rule that accepts new connections of the app user."""

    chain: str
    #: 1-based position in its chain, as ``nft -a list chain`` counts them
    position: int
    addresses: tuple[str, ...]
    ports: tuple[str, ...]
    #: the rule matches only packets leaving through the loopback interface
    loopback: bool

    def destinations(self) -> list[str]:
        return [f"{a}:{p}" for a in self.addresses or (ANY,) for p in self.ports or (ANY,)]

    def stays_on_the_host(self) -> bool:
        if self.loopback:
            return True
        try:
            return bool(self.addresses) and all(
                ipaddress.ip_network(a, strict=False).is_loopback for a in self.addresses)
        except ValueError:
            return False


def _values(right: object) -> list[str]:
    if isinstance(right, list):  # an anonymous set's elements, or a flag list
        return [v for item in right for v in _values(item)]
    if isinstance(right, dict):
        if "set" in right:
            return _values(right["set"])
        if "prefix" in right:
            return [f"{right['prefix']['addr']}/{right['prefix']['len']}"]
        if "range" in right:
            low, high = right["range"]
            return [f"{low}-{high}"]
    return [str(right)]


def _matches(expr: Expr) -> list[tuple[object, list[str]]]:
    return [(m.get("left"), _values(m.get("right")))
            for s in _steps(expr) if isinstance(m := s.get("match"), dict)]


def _owners(expr: Expr) -> list[str] | None:
    """The users a rule is limited to (``meta skuid``), None when it is not."""
    found = [values for left, values in _matches(expr) if left == {"meta": {"key": "skuid"}}]
    return [v for values in found for v in values] if found else None


def _accept(chain: str, position: int, expr: Expr) -> Accept | None:
    if not accepts(expr) or only_established(expr):
        return None  # an established-only rule continues what was let through
    addresses: list[str] = []
    ports: list[str] = []
    loopback = False
    for left, values in _matches(expr):
        if not isinstance(left, dict):
            continue
        field = cast(dict[str, object], left.get("payload", {})).get("field")
        meta = cast(dict[str, object], left.get("meta", {})).get("key")
        if field == "daddr":
            addresses += values
        elif field == "dport":
            ports += values
        elif meta in ("oif", "oifname") and values == ["lo"]:
            loopback = True
    return Accept(chain, position, tuple(addresses), tuple(ports), loopback)


def app_user_accepts(output_rules: dict[str, list[Expr]], chain_rules: dict[str, list[Expr]],
                     user: str) -> list[Accept]:
    """Every rule that accepts a new connection of ``user``: those of the chain the
    user's packets jump to, and those before the jump that do not exclude them.

    Reading the rules rather than trusting their comments means a hand-added rule
    shows up.
    """
    found: list[Accept] = []
    for chain, rules in output_rules.items():
        family_table = chain.split("/", 1)[0]
        for position, expr in enumerate(rules, start=1):
            if jumps_by_owner(expr):
                target = next(cast(dict[str, dict[str, str]], s)["jump"]["target"]
                              for s in _steps(expr) if "jump" in s)
                jumped = f"{family_table}/{target}"
                found += [a for n, e in enumerate(chain_rules.get(jumped, []), start=1)
                          if (a := _accept(jumped, n, e)) is not None]
                break
            owners = _owners(expr)
            if (owners is None or user in owners) and (a := _accept(chain, position, expr)):
                found.append(a)
    return found
