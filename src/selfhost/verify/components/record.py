"""The deployment record (the record role): what was deployed, from which profile.

The egress log check dates "since the last deploy" from it, and reconciliation
reads its third parties and fingerprints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TypedDict, cast

from selfhost.verify.contract import (
    CheckDef,
    Component,
    Context,
    Facts,
    Fragment,
    Outcome,
    Part,
    Section,
    bad,
    ok,
)
from selfhost.verify.remote_base import StatFacts, stat_path


class RecordFacts(TypedDict, total=False):
    exists: bool
    #: the record's JSON, as the record role wrote it
    data: dict[str, object]
    error: str
    stat: StatFacts


def collect_record(path: str) -> RecordFacts:
    try:
        with open(path, encoding="utf-8") as handle:
            return {"exists": True, "data": json.load(handle), "stat": stat_path(path)}
    except FileNotFoundError:
        return {"exists": False}
    except (OSError, ValueError) as exc:
        return {"exists": True, "error": str(exc)}


SECTIONS = (Section("record", collect_record),)


def record_facts(facts: Facts) -> RecordFacts:
    return cast(RecordFacts, facts.section("record"))


def data(facts: Facts) -> dict[str, object] | None:
    """The record's content, or None when there is no readable record."""
    rec = record_facts(facts)
    return rec["data"] if rec.get("exists") and "data" in rec else None


def deploy_time(facts: Facts) -> str | None:
    """When the host was last deployed, per its record."""
    try:
        found = data(facts)
    except ValueError:
        return None
    value = (found or {}).get("time") or (found or {}).get("deployed_at")
    return str(value) if value else None


def third_party_ids(recorded: dict[str, object]) -> list[str]:
    """The third parties a record names (as ids or as objects with an id)."""
    items = cast(list[object], recorded.get("third_parties") or [])
    return sorted(str(i["id"]) if isinstance(i, dict) else str(i) for i in items)


def _endpoints(items: list[object]) -> list[str]:
    return sorted(i if isinstance(i, str) else f"{i['host']}:{i['port']}"  # type: ignore[index]
                  for i in items)


@dataclass(frozen=True)
class RecordParams:
    path: str
    #: the fields of the record that the Plan decides, as the record role writes them
    expected: dict[str, object]


def _record(params: RecordParams, facts: Facts) -> Outcome:
    rec = record_facts(facts)
    if not rec["exists"]:
        return bad("no deployment record on the host (never deployed?)")
    if "error" in rec:
        return bad(f"the record cannot be read: {rec['error']}")
    found_data = rec["data"]
    found = {
        **{k: found_data.get(k) for k in params.expected},
        "egress_allowlist": _endpoints(cast(list[object],
                                            found_data.get("egress_allowlist", []))),
        "third_parties": third_party_ids(found_data),
        "env_keys": sorted(cast(list[str], found_data.get("env_keys", []))),
    }
    diffs = [f"{k}: {found[k]} (expected {v})" for k, v in params.expected.items()
             if found[k] != v]
    if diffs:
        return bad("; ".join(diffs))
    return ok(f"fingerprint {found['profile_fingerprint']}, deployed "
              f"{found_data.get('deployed_at') or found_data.get('time')}")


DEPLOYMENT_RECORD = CheckDef(
    "host.deployment_record", "host", "the deployment record names the Plan's profile "
    "fingerprint, components, allowlist, third parties and app keys", _record)
DEFS = (DEPLOYMENT_RECORD,)


def part(ctx: Context) -> Part:
    plan, host, path = ctx.plan, ctx.host, ctx.plan.layout.deployment_record
    expected: dict[str, object] = {
        "host": host.name,
        "customer_id": plan.customer.id,
        "profile_fingerprint": plan.profile_fingerprint,
        "topology": plan.topology,
        "components": list(host.components),
        "egress_allowlist": sorted(str(e) for e in plan.egress_allowlist),
        "third_parties": sorted(plan.third_party_ids()),
        "env_keys": sorted(plan.app.env_keys) if ctx.has("app") else [],
    }
    check = DEPLOYMENT_RECORD.make(
        host, RecordParams(path, expected),
        description=f"the deployment record {path} matches the Plan",
        expected=f"profile fingerprint {plan.profile_fingerprint}, and the Plan's components, "
        "allowlist, third parties and app keys for this host",
        fix="deploy this profile (`selfhost deploy PROFILE`): the hosts run another "
        "deployment than the profile describes")
    return Part([check], fragment(ctx))


def fragment(ctx: Context) -> Fragment:
    """What reading the record takes (reconciliation asks for it alone)."""
    return Fragment(sections={"record": ctx.plan.layout.deployment_record})


COMPONENT = Component("record", DEFS, part, SECTIONS)
