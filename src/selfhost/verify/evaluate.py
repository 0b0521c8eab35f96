"""A check against one host's collected facts -> passed or not, and what was found. Pure.

The host, app and egress checks are evaluated here; PostgreSQL, Redis and nginx
in :mod:`selfhost.verify.evaluate_services`.
"""

from __future__ import annotations

from typing import Any

from selfhost.verify import egress_log, proxy_conf
from selfhost.verify.checks import Check
from selfhost.verify.evaluate_services import SERVICE_EVALUATORS
from selfhost.verify.outcome import (
    Evaluator,
    Facts,
    Outcome,
    bad,
    describe_stat,
    listening,
    ok,
    section,
    unit_active,
)
from selfhost.verify.probes import NFTABLES_UNIT

LOOPBACK = ("127.0.0.1", "::1")

__all__ = ["EVALUATORS", "Facts", "Outcome", "evaluate"]


def evaluate(check: Check, facts: Facts) -> Outcome:
    """The outcome of ``check`` on facts collected from its host."""
    name = check.id.split(".", 2)
    key = ".".join(name[:2])
    evaluator = EVALUATORS.get(key)
    if evaluator is None:
        return bad(f"no evaluation for {check.id}")
    try:
        return evaluator(check, facts)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return bad(f"could not be determined ({type(exc).__name__}: {exc})")


# -- host -----------------------------------------------------------------------------

def host_nftables(check: Check, facts: Facts) -> Outcome:
    active, state = unit_active(facts, NFTABLES_UNIT)
    nft = section(facts, "nftables")
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
    if check.params["app_host"] and not nft["skuid_rules"]:
        problems.append(f"no output rule matching the app user {check.params['app_user']}")
    if problems:
        return bad("; ".join(problems))
    return ok(f"{state}; input policy drop in "
              + ", ".join(f"{c['family']} {c['table']}/{c['name']}" for c in dropping))


def host_sysctl(check: Check, facts: Facts) -> Outcome:
    values = section(facts, "sysctl")
    in_container = section(facts, "container")
    # A container shares the host's kernel: only its own network namespace is its own.
    wanted = {k: v for k, v in check.params["sysctl"].items()
              if not in_container or k.startswith("net.")}
    wrong = [f"{k}={values.get(k)}" for k, v in wanted.items() if values.get(k) != v]
    scope = "(container: net.* only; the rest is the host kernel's)" if in_container else ""
    if wrong:
        return bad(f"differs: {', '.join(wrong)} {scope}".strip())
    return ok(f"{len(wanted)} settings as expected {scope}".strip())


def _endpoint_strings(items: list[Any]) -> list[str]:
    return sorted(i if isinstance(i, str) else f"{i['host']}:{i['port']}" for i in items)


def _ids(items: list[Any]) -> list[str]:
    return sorted(i if isinstance(i, str) else i["id"] for i in items)


def host_deployment_record(check: Check, facts: Facts) -> Outcome:
    rec = section(facts, "record")
    if not rec["exists"]:
        return bad("no deployment record on the host (never deployed?)")
    if "error" in rec:
        return bad(f"the record cannot be read: {rec['error']}")
    data, expected = rec["data"], check.params["record"]
    found = {
        **{k: data.get(k) for k in expected},
        "egress_allowlist": _endpoint_strings(data.get("egress_allowlist", [])),
        "third_parties": _ids(data.get("third_parties", [])),
        "env_keys": sorted(data.get("env_keys", [])),
    }
    diffs = [f"{k}: {found[k]} (expected {expected[k]})" for k in expected
             if found[k] != expected[k]]
    if diffs:
        return bad("; ".join(diffs))
    return ok(f"fingerprint {found['profile_fingerprint']}, deployed "
              f"{data.get('deployed_at') or data.get('time')}")


def host_secret_files(check: Check, facts: Facts) -> Outcome:
    stats = section(facts, "files")
    wrong = [f"{p}: {describe_stat(stats.get(p, {}))}" for p in check.params["files"]
             if stats.get(p, {}).get("mode") != "0600"]
    return bad("; ".join(wrong)) if wrong else ok("all 0600")

def exposed_ports(check: Check, facts: Facts) -> Outcome:
    public = sorted({p for a, p in listening(facts) if a not in LOOPBACK
                     and not a.startswith("127.")})
    extra = [p for p in public if p not in check.params["ports"]]
    if extra:
        return bad(f"also listening beyond loopback on port(s) {', '.join(map(str, extra))} "
                   f"(all: {', '.join(map(str, public))})")
    return ok(f"ports {', '.join(map(str, public))}")

# -- backups ---------------------------------------------------------------------------

def backup_timer(check: Check, facts: Facts) -> Outcome:
    unit = check.params["unit"]
    active, state = unit_active(facts, unit)
    enabled = section(facts, "units").get(unit, {}).get("UnitFileState")
    if not active or enabled != "enabled":
        return bad(f"{state}, unit file {enabled or 'unknown'}")
    return ok(f"{state}, enabled")


def backup_directory(check: Check, facts: Facts) -> Outcome:
    st = section(facts, "files").get(check.params["path"], {})
    if not st.get("dir") or st.get("mode") != "0700" or st.get("owner") != "root":
        return bad(describe_stat(st))
    return ok(describe_stat(st))


# -- app -------------------------------------------------------------------------------

def app_unit(check: Check, facts: Facts) -> Outcome:
    unit = check.params["unit"]
    props = section(facts, "units").get(unit, {})
    active, state = unit_active(facts, unit)
    wrong = [f"{k}={props.get(k)}" for k, v in check.params["hardening"].items()
             if props.get(k) != v]
    if props.get("User") != check.params["user"]:
        wrong.insert(0, f"User={props.get('User')}")
    if not active or wrong:
        return bad("; ".join([state, *wrong]))
    return ok(f"{state} as {props['User']}, hardened")


def app_env_mode(check: Check, facts: Facts) -> Outcome:
    st = section(facts, "files").get(check.params["path"], {})
    good = st.get("mode") == "0600" and st.get("owner") == check.params["user"]
    return (ok if good else bad)(describe_stat(st))


def app_env_keys(check: Check, facts: Facts) -> Outcome:
    a = section(facts, "app")
    if "env_error" in a:
        return bad(f"cannot read the environment file: {a['env_error']}")
    env, want = a["env"], check.params["keys"]
    extra = sorted(set(env) - set(want))
    missing = sorted(set(want) - set(env))
    wrong = [f"{k}={env[k]!r} (expected {v!r})" for k, v in check.params["values"].items()
             if k in env and env[k] != v]
    wrong += [f"{k} is {a['url_hosts'].get(k)!r} (expected {v!r} with its password)"
              for k, v in check.params["url_keys"].items()
              if k in a["url_hosts"] and a["url_hosts"][k] != v]
    problems = ([f"keys the Plan does not enable: {', '.join(extra)}"] if extra else []) \
        + ([f"missing keys: {', '.join(missing)}"] if missing else []) + wrong
    return bad("; ".join(problems)) if problems else ok(f"keys {', '.join(sorted(env))}")


def app_healthz(check: Check, facts: Facts) -> Outcome:
    h = section(facts, "app")["healthz"]
    if "error" in h:
        return bad(f"/healthz did not answer: {h['error']}")
    body = h.get("body") or {}
    checks = body.get("checks", {})
    parts = [f"{name}: {'ok' if checks.get(name, {}).get('ok') else 'FAILED'} "
             f"({checks.get(name, {}).get('detail', 'not reported')})"
             for name in ("database", "cache", "ai")]
    provider = checks.get("ai", {}).get("provider")
    good = h["status"] == 200 and all(checks.get(n, {}).get("ok") for n in
                                      ("database", "cache", "ai"))
    if provider != check.params["ai"]:
        good = False
        parts.append(f"AI provider {provider} (expected {check.params['ai']})")
    return (ok if good else bad)(f"HTTP {h['status']}; " + "; ".join(parts))


# -- egress ----------------------------------------------------------------------------

def _only_established(expr: list[Any]) -> bool:
    """A rule that matches established/related connections only (it cannot accept
    a new connection, whoever owns it)."""
    for step in expr:
        match = step.get("match", {}) if isinstance(step, dict) else {}
        if match.get("left") == {"ct": {"key": "state"}}:
            right = match.get("right")
            states = {right} if isinstance(right, str) else set(right or [])
            return bool(states) and states <= {"established", "related"}
    return False


def _jumps_by_owner(expr: list[Any]) -> bool:
    """``meta skuid ... jump CHAIN``: the rule that sends the app user's packets to
    its own chain (nft shows the user by name or by uid)."""
    owner = any(isinstance(s, dict) and s.get("match", {}).get("left") == {"meta": {"key": "skuid"}}
                for s in expr)
    return owner and any(isinstance(s, dict) and "jump" in s for s in expr)


def egress_fence_first(check: Check, facts: Facts) -> Outcome:
    user = check.params["user"]
    chains = section(facts, "nftables")["output_rules"]
    fenced = []
    for chain, rules in chains.items():
        first = next((i for i, expr in enumerate(rules) if _jumps_by_owner(expr)), None)
        if first is None:
            continue
        early = [i + 1 for i, expr in enumerate(rules[:first])
                 if {"accept": None} in expr and not _only_established(expr)]
        if early:
            return bad(f"{chain}: rule {', '.join(map(str, early))} accepts before the jump for "
                       f"{user} (rule {first + 1})")
        fenced.append(chain)
    if not fenced:
        return bad(f"no output chain matches the app user {user}")
    return ok(f"{user}'s jump precedes every other accept in {', '.join(fenced)}")


def _verdict_only(expr: list[Any], verdict: str) -> bool:
    """A rule that gives ``verdict`` to every packet: nothing before it selects
    packets (a counter or a log line does not; a match or a rate limit does)."""
    steps = [s for s in expr if isinstance(s, dict)]
    return ({verdict: None} in steps
            and not any(k in s for s in steps for k in ("match", "limit", "jump", "goto")))


def _fence(chain: str, rules: list[Any], chain_rules: dict[str, list[Any]]) -> str | None:
    """The chain the app user's packets jump to from ``chain``, when it ends by
    dropping everything it did not accept."""
    family_table = chain.split("/", 1)[0]
    for expr in rules:
        if not _jumps_by_owner(expr):
            continue
        target = next(s["jump"]["target"] for s in expr if isinstance(s, dict) and "jump" in s)
        jumped = chain_rules.get(f"{family_table}/{target}", [])
        if jumped and _verdict_only(jumped[-1], "drop"):
            return f"{family_table}/{target}"
    return None


def egress_scope(check: Check, facts: Facts) -> Outcome:
    nft = section(facts, "nftables")
    if "error" in nft:
        return bad(f"`nft list ruleset` failed: {nft['error']}")
    user, scope = check.params["user"], check.params["scope"]
    outputs: dict[str, list[Any]] = nft["output_rules"]
    chain_rules: dict[str, list[Any]] = nft.get("chain_rules", {})
    found = []
    if check.params["app_host"]:
        fences = [f for chain, rules in outputs.items()
                  if (f := _fence(chain, rules, chain_rules)) is not None]
        if not fences:
            return bad(f"{user} is not fenced: no output chain jumps it to a chain that ends "
                       "in a drop")
        found.append(f"{user} fenced by {', '.join(fences)}")
    if scope == "host":
        policy = {f"{c['family']} {c['table']}/{c['name']}": c.get("policy")
                  for c in nft["chains"] if c.get("hook") == "output"}
        dropping = [chain for chain, rules in outputs.items()
                    if policy.get(chain) == "drop"
                    and not any(_verdict_only(expr, "accept") for expr in rules)]
        if not dropping:
            shown = ", ".join(
                f"{chain} policy {policy.get(chain)}"
                + (" with an accept-all rule" if any(_verdict_only(e, "accept") for e in rules)
                   else "") for chain, rules in outputs.items()) or "none"
            return bad(f"no output chain drops by default for every user (output chains: "
                       f"{shown})")
        found.append(f"every user's output dropped by default in {', '.join(dropping)}")
    return ok("; ".join(found) or "scope app: no app user on this host")


def egress_allowlist(check: Check, facts: Facts) -> Outcome:
    e = section(facts, "egress")
    if "allowlist_error" in e:
        return bad(f"the proxy's allowlist cannot be read: {e['allowlist_error']}")
    found = proxy_conf.allowlist(e["allowlist_lines"])
    want = sorted(check.params["allowlist"])
    extra = [d for d in found if d not in want]
    missing = [d for d in want if d not in found]
    if extra or missing:
        return bad("; ".join(([f"not in the Plan: {', '.join(extra)}"] if extra else [])
                             + ([f"missing: {', '.join(missing)}"] if missing else [])))
    return ok(", ".join(found) or "empty (nothing may leave)")


def egress_refused(check: Check, facts: Facts) -> Outcome:
    answer = section(facts, "egress")["refusals"][check.params["destination"]]
    status = answer.get("proxy_status")
    shown = f"proxy answered {status}: {answer.get('detail', '')}".strip()
    if answer.get("allowed") is False:
        return ok(shown)
    if answer.get("allowed") is None:
        return bad(f"no verdict from the proxy ({answer.get('detail')})")
    return bad(f"admitted by the proxy ({shown})")


def egress_direct(check: Check, facts: Facts) -> Outcome:
    d = section(facts, "egress")["direct"]
    target, user = check.params["target"], check.params["user"]
    if d["user_rc"] == 0:
        return bad(f"{user} connected to {target} directly")
    if d["root_rc"] != 0 and check.params.get("scope") == "host":
        # Scope host drops root's connection too unless the target is one of the
        # host's own allowances; egress.scope proves the default drop itself.
        return ok(f"{user} blocked (exit {d['user_rc']}); root blocked too (egress scope host)")
    if d["root_rc"] != 0:
        return bad(f"inconclusive: root cannot reach {target} either "
                   f"({d['root_err'] or 'exit ' + str(d['root_rc'])}), so the target proves "
                   "nothing about the firewall")
    return ok(f"{user} blocked (exit {d['user_rc']}), root connected")


def egress_observed(check: Check, facts: Facts) -> Outcome:
    since = egress_log.deploy_time(section(facts, "record"))
    log = section(facts, "egress")["log"]
    if "error" in log or not log["exists"]:
        return bad(f"the proxy's log cannot be read: {log.get('error', 'it does not exist')}")
    seen = egress_log.destinations(log["lines"], since)
    allowed = list(check.params["allowlist"])
    outside = sorted(d for d in seen
                     if not egress_log.on_list(d, allowed) and egress_log.contacted(seen[d]))
    shown = ", ".join(f"{d} ({seen[d].describe()})" for d in sorted(seen)) or "none"
    if outside:
        return bad(f"contacted outside the list: {', '.join(outside)}; all since "
                   f"{since or 'the log began'}: {shown}")
    return ok(f"since {since or 'the log began'}: {shown}")


EVALUATORS: dict[str, Evaluator] = {
    **SERVICE_EVALUATORS,
    "host.nftables": host_nftables,
    "host.sysctl": host_sysctl,
    "host.deployment_record": host_deployment_record,
    "host.secret_files": host_secret_files,
    "backup.timer": backup_timer,
    "backup.directory": backup_directory,
    "host.exposed_ports": exposed_ports,
    "nginx.exposed_ports": exposed_ports,
    "app.unit": app_unit,
    "app.env_file_mode": app_env_mode,
    "app.env_keys": app_env_keys,
    "app.healthz": app_healthz,
    "egress.fence_first": egress_fence_first,
    "egress.scope": egress_scope,
    "egress.allowlist": egress_allowlist,
    "egress.unlisted_refused": egress_refused,
    "egress.ai_refused": egress_refused,
    "egress.direct_dropped": egress_direct,
    "egress.observed": egress_observed,
}
