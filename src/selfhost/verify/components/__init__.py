"""Every component's contract, and the checks and collection spec of a Plan's hosts. Pure.

A component lives in one module here: its checks (id, texts, evaluation), the
remote sections that collect its facts, typed, and what it asks of each host.
Adding a check means touching that module (and its rows in the unit tests of
the checks and in the tampering test).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from selfhost.verify import collector
from selfhost.verify.components import (
    app,
    backup,
    egress,
    host,
    nginx,
    postgresql,
    record,
    redis,
    tls,
)
from selfhost.verify.contract import (
    COMPONENTS,
    AnyCheck,
    CheckDef,
    Component,
    Context,
    Part,
    Section,
)

if TYPE_CHECKING:
    # Types only: the drift watch imports the checks on hosts, which have no pydantic.
    from selfhost.plan import Endpoint, Plan, PlanHost

ALL: tuple[Component, ...] = (host.COMPONENT, record.COMPONENT, postgresql.COMPONENT,
                              backup.COMPONENT, redis.COMPONENT, egress.COMPONENT,
                              app.COMPONENT, tls.COMPONENT, nginx.COMPONENT)
#: every remote section of every component (one script serves every host)
SECTIONS: tuple[Section, ...] = tuple(s for c in ALL for s in c.sections)
DEFS: tuple[CheckDef[object], ...] = tuple(d for c in ALL for d in c.defs)


def context(plan: Plan, target: PlanHost, direct_target: Endpoint | None = None) -> Context:
    secret = sorted({f for c in ALL if c.secret_files is not None
                     for f in c.secret_files(Context(plan, target, direct_target))})
    return Context(plan, target, direct_target, tuple(secret))


def parts(plan: Plan, target: PlanHost, direct_target: Endpoint | None = None) -> list[Part]:
    ctx = context(plan, target, direct_target)
    return [c.part(ctx) for c in ALL]


def generate(plan: Plan, direct_targets: Mapping[str, Endpoint] | None = None
             ) -> list[AnyCheck]:
    """Every check the Plan implies, in report order.

    ``direct_targets`` maps each app host to an address it can reach on the
    network but its app user must not (another host of the deployment); without
    one the direct-outbound check cannot be generated for that host.
    """
    direct_targets = direct_targets or {}
    out = [check for h in plan.hosts
           for p in parts(plan, h, direct_targets.get(h.name)) for check in p.checks]
    order = {c: i for i, c in enumerate(COMPONENTS)}
    return sorted(out, key=lambda c: order[c.component])


def host_spec(plan: Plan, target: PlanHost, direct_target: Endpoint | None = None
              ) -> dict[str, object]:
    """What to collect from ``target``: the fragments of the components on it."""
    return collector.merge(p.fragment for p in parts(plan, target, direct_target))


def remote_command(spec: dict[str, object]) -> str:
    return collector.remote_command(SECTIONS, spec)
