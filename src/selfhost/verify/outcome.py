"""What an evaluated check says, and the functions every evaluation reads facts with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from selfhost.verify.checks import Check


@dataclass(frozen=True)
class Outcome:
    passed: bool
    found: str


Facts = dict[str, Any]
Evaluator = Callable[[Check, Facts], Outcome]


def ok(found: str) -> Outcome:
    return Outcome(True, found)


def bad(found: str) -> Outcome:
    return Outcome(False, found)

def section(facts: Facts, name: str) -> Any:
    value = facts[name]
    if isinstance(value, dict) and "section_error" in value:
        raise ValueError(f"collecting {name} failed: {value['section_error']}")
    return value


def listening(facts: Facts, port: int | None = None) -> list[tuple[str, int]]:
    return [(a, p) for a, p in section(facts, "listeners") if port is None or p == port]


def unit_active(facts: Facts, unit: str) -> tuple[bool, str]:
    props = section(facts, "units").get(unit, {})
    state = f"{props.get('ActiveState', 'unknown')}/{props.get('SubState', 'unknown')}"
    return props.get("ActiveState") == "active", f"{unit} {state}"

def describe_stat(st: dict[str, Any]) -> str:
    if not st.get("exists"):
        return f"missing ({st.get('error', 'not found')})"
    return f"mode {st['mode']}, owner {st['owner']}:{st['group']}"
