"""The base system of every host (the common role): firewall, kernel settings, secret
files, listening ports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TypedDict, cast

from selfhost.verify.contract import (
    AnyCheck,
    CheckDef,
    Component,
    Context,
    Facts,
    Fragment,
    Outcome,
    Part,
    Section,
    bad,
    listening,
    ok,
    unit_active,
)
from selfhost.verify.remote_base import StatFacts, describe_stat, run_command

LOOPBACK = ("127.0.0.1", "::1")
#: the common role's kernel hardening is the Plan's ``layout.kernel_settings`` (site.yml
#: hands it to the role). In a container only ``net.*`` is the host's own.


# -- facts -------------------------------------------------------------------------------

class NftChain(TypedDict):
    family: str
    table: str
    name: str
    hook: str | None
    policy: str | None


class NftFacts(TypedDict, total=False):
    error: str
    chains: list[NftChain]
    #: rules (their expressions as JSON text) that match a socket owner
    skuid_rules: list[str]
    #: each output-hook chain's rules in evaluation order ("family table/name" -> exprs)
    output_rules: dict[str, list[list[object]]]
    #: every chain's rules, so a chain an output rule jumps to can be read as well
    chain_rules: dict[str, list[list[object]]]


def collect_nftables(_: object) -> NftFacts:
    res = run_command(["nft", "-j", "list", "ruleset"])
    if res["rc"] != 0:
        return {"error": res["err"].strip() or "nft failed"}
    items = json.loads(res["out"]).get("nftables", [])
    chains = [i["chain"] for i in items if "chain" in i]
    rules = [json.dumps(i["rule"].get("expr", [])) for i in items if "rule" in i]
    outputs = {(c["family"], c["table"], c["name"]) for c in chains if c.get("hook") == "output"}
    output_rules: dict[str, list[list[object]]] = {
        f"{f} {t}/{n}": [] for f, t, n in sorted(outputs)}
    chain_rules: dict[str, list[list[object]]] = {}
    for item in items:
        rule = item.get("rule")
        if not rule:
            continue
        key = f"{rule.get('family')} {rule.get('table')}/{rule.get('chain')}"
        chain_rules.setdefault(key, []).append(rule.get("expr", []))
        if (rule.get("family"), rule.get("table"), rule.get("chain")) in outputs:
            output_rules[key].append(rule.get("expr", []))
    return {"chains": [{"family": c.get("family"), "table": c.get("table"),
                        "name": c.get("name"), "hook": c.get("hook"),
                        "policy": c.get("policy")} for c in chains],
            "skuid_rules": [r for r in rules if '"skuid"' in r],
            "output_rules": output_rules, "chain_rules": chain_rules}


def collect_sysctl(keys: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in keys:
        try:
            with open("/proc/sys/" + key.replace(".", "/"), encoding="ascii") as handle:
                out[key] = " ".join(handle.read().split())
        except OSError as exc:
            out[key] = f"unreadable: {exc.strerror}"
    return out


def collect_container(_: object) -> bool:
    return run_command(["systemd-detect-virt", "--container", "--quiet"])["rc"] == 0


SECTIONS = (Section("nftables", collect_nftables), Section("sysctl", collect_sysctl),
            Section("container", collect_container))


def nftables(facts: Facts) -> NftFacts:
    """The ruleset (egress reads it as well)."""
    return cast(NftFacts, facts.section("nftables"))


def file_stats(facts: Facts) -> dict[str, StatFacts]:
    """``stat`` of every path a component asked for (the shared ``files`` section)."""
    return cast(dict[str, StatFacts], facts.section("files"))


# -- checks ------------------------------------------------------------------------------

@dataclass(frozen=True)
class NftParams:
    unit: str
    app_user: str
    app_host: bool


def _nftables(params: NftParams, facts: Facts) -> Outcome:
    active, state = unit_active(facts, params.unit)
    nft = nftables(facts)
    if "error" in nft:
        return bad(f"{state}; `nft list ruleset` failed: {nft['error']}")
    inputs = [c for c in nft["chains"] if c.get("hook") == "input"]
    dropping = [c for c in inputs if c.get("policy") == "drop"]
    problems = []
    if not active:
        problems.append(state)
    if not dropping:
        problems.append("no input chain with policy drop (input chains: "
                        + (", ".join(f"{c['table']}/{c['name']} policy {c.get('policy')}"
                                     for c in inputs) or "none") + ")")
    if params.app_host and not nft["skuid_rules"]:
        problems.append(f"no output rule matching the app user {params.app_user}")
    if problems:
        return bad("; ".join(problems))
    return ok(f"{state}; input policy drop in "
              + ", ".join(f"{c['family']} {c['table']}/{c['name']}" for c in dropping))


def _sysctl(params: dict[str, str], facts: Facts) -> Outcome:
    values: dict[str, str] = facts.section("sysctl")
    in_container = bool(facts.section("container"))
    # A container shares the host's kernel: only its own network namespace is its own.
    wanted = {k: v for k, v in params.items() if not in_container or k.startswith("net.")}
    wrong = [f"{k}={values.get(k)}" for k, v in wanted.items() if values.get(k) != v]
    scope = "(container: net.* only; the rest is the host kernel's)" if in_container else ""
    if wrong:
        return bad(f"differs: {', '.join(wrong)} {scope}".strip())
    return ok(f"{len(wanted)} settings as expected {scope}".strip())


def _secret_files(params: tuple[str, ...], facts: Facts) -> Outcome:
    stats = file_stats(facts)
    wrong = [f"{p}: {describe_stat(stats.get(p, {}))}" for p in params
             if stats.get(p, {}).get("mode") != "0600"]
    return bad("; ".join(wrong)) if wrong else ok("all 0600")


def exposed_ports(params: tuple[int, ...], facts: Facts) -> Outcome:
    """Only the Plan's ports listen beyond loopback (``nginx.exposed_ports`` too)."""
    public = sorted({p for a, p in listening(facts) if a not in LOOPBACK
                     and not a.startswith("127.")})
    extra = [p for p in public if p not in params]
    if extra:
        return bad(f"also listening beyond loopback on port(s) {', '.join(map(str, extra))} "
                   f"(all: {', '.join(map(str, public))})")
    return ok(f"ports {', '.join(map(str, public))}")


NFTABLES = CheckDef("host.nftables", "host", "the nftables service is active, an input hook "
                    "drops by default and, on app hosts, an output rule matches the app user",
                    _nftables)
SYSCTL = CheckDef("host.sysctl", "host", "the common role's kernel network hardening is in "
                  "effect (in a container: the net.* settings)", _sysctl)
SECRET_FILES = CheckDef("host.secret_files", "host", "every secret file of the host's "
                        "components (keys, the app environment) has mode 0600", _secret_files)
EXPOSED_PORTS = CheckDef("host.exposed_ports", "host", "on hosts without nginx, only ssh and "
                         "the Plan's services listen beyond loopback", exposed_ports)
DEFS = (NFTABLES, SYSCTL, SECRET_FILES, EXPOSED_PORTS)


def planned_ports(ctx: Context) -> tuple[int, ...]:
    """The TCP ports the Plan opens on the host beyond loopback."""
    plan, host = ctx.plan, ctx.host
    ports = {host.ssh_port}
    if ctx.has("nginx"):
        ports |= {80, 443}
    for wiring, component in ((plan.database, "postgresql"), (plan.cache, "redis")):
        if ctx.has(component) and any(a not in LOOPBACK for a in wiring.listen):
            ports.add(wiring.port)
    return tuple(sorted(ports))


def part(ctx: Context) -> Part:
    layout, user = ctx.plan.layout, ctx.plan.layout.app_user
    sysctl = {k: str(v) for k, v in layout.kernel_settings.items()}
    checks: list[AnyCheck] = [
        NFTABLES.make(ctx.host, NftParams(layout.nftables_unit, user, ctx.has("app")),
                      description="nftables is active and drops unexpected traffic",
                      expected="the nftables service active, with an input hook whose policy "
                      f"is drop and an output rule for the app user {user}",
                      fix="run `selfhost deploy PROFILE` (the egress role loads the ruleset); "
                      f"`systemctl status {layout.nftables_unit}` on the host shows why it is not "
                      "active"),
        SYSCTL.make(ctx.host, sysctl,
                    description="kernel network hardening is in effect",
                    expected=", ".join(f"{k}={v}" for k, v in sysctl.items())),
    ]
    if ctx.secret_files:
        checks.append(SECRET_FILES.make(
            ctx.host, ctx.secret_files, description="secret files are readable by their "
            "owner only", expected=f"mode 0600: {', '.join(ctx.secret_files)}",
            fix="`chmod 0600` the file, then redeploy to confirm"))
    if not ctx.has("nginx"):
        ports = planned_ports(ctx)
        checks.append(EXPOSED_PORTS.make(
            ctx.host, ports, description="only the Plan's services listen beyond loopback",
            expected=f"TCP ports {', '.join(map(str, ports))}",
            fix="stop the extra service or bind it to 127.0.0.1"))
    return Part(checks, Fragment(
        sections={"nftables": None, "container": None, "sysctl": sorted(sysctl)},
        units={layout.nftables_unit: []}, files=list(ctx.secret_files)))


COMPONENT = Component("host", DEFS, part, SECTIONS)
