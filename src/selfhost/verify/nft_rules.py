"""Reading nftables rules as ``nft -j list ruleset`` gives their expressions. Pure.

The egress checks ask what a chain does to the app user's packets: which rule
jumps them to their own chain, whether that chain ends by dropping, and
whether an earlier rule could accept a new connection first.
"""

from __future__ import annotations

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
