"""Egress (the egress role): the app user fenced by nftables, the proxy's allowlist
exactly the Plan's, unlisted destinations refused, and the proxy's log."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypedDict, cast

from selfhost.verify import egress_log, nft_rules, proxy_conf
from selfhost.verify.components import record
from selfhost.verify.components.host import nftables
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
    ok,
)
from selfhost.verify.remote_base import TIMEOUT, run_command

#: a name no allowlist can contain: ``.invalid`` never resolves (RFC 6761), and the
#: proxy must refuse it before any lookup
UNLISTED_DESTINATION = "unlisted.selfhost-verify.invalid:443"


# -- facts -------------------------------------------------------------------------------

class Verdict(TypedDict, total=False):
    #: None: no verdict (the proxy or the app did not answer)
    allowed: bool | None
    proxy_status: int | None
    detail: str


class DirectFacts(TypedDict):
    user_rc: int | None
    user_err: str
    root_rc: int | None
    root_err: str


class LogFacts(TypedDict, total=False):
    exists: bool
    error: str
    lines: list[str]
    truncated: bool


class EgressFacts(TypedDict, total=False):
    allowlist_lines: list[str]
    allowlist_error: str
    refusals: dict[str, Verdict]
    direct: DirectFacts
    log: LogFacts


def egress_connect(proxy_port: int, target: str) -> Verdict:
    import socket  # noqa: PLC0415 - shipped to the host on its own
    try:
        with socket.create_connection(("127.0.0.1", proxy_port), timeout=TIMEOUT) as sock:
            sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            line = sock.makefile("rb").readline().decode(errors="replace")
    except OSError as exc:
        return {"allowed": None, "detail": f"proxy not reachable: {exc}"}
    words = line.split()
    status = int(words[1]) if len(words) > 1 and words[1].isdigit() else None
    allowed = None if status is None else status not in (403, 407)
    return {"allowed": allowed, "proxy_status": status, "detail": line.strip()}


def egress_verdict(spec: dict[str, object], target: str) -> Verdict:
    """The proxy's verdict on ``target``: through the app's /egress when it is the
    contract probe (the app's own path), else by a CONNECT of our own."""
    import urllib.request  # noqa: PLC0415 - shipped to the host on its own
    from urllib.parse import quote  # noqa: PLC0415
    host, port = target.rsplit(":", 1)
    if not spec["probe_app"]:
        return egress_connect(int(cast(int, spec["proxy_port"])), target)
    url = f"http://127.0.0.1:{spec['app_port']}/egress?host={quote(host)}&port={port}"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return cast("Verdict", dict(json.load(resp)))
    except (OSError, ValueError) as exc:
        return {"allowed": None, "detail": str(exc)}


def egress_log_tail(path: str) -> LogFacts:
    tail = 4 << 20  # the newest 4 MiB: every request since a recent deploy, bounded
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - tail))
            data = handle.read()
    except FileNotFoundError:
        return {"exists": False, "lines": []}
    except OSError as exc:
        return {"exists": True, "error": str(exc), "lines": []}
    lines = data.decode(errors="replace").splitlines()
    if size > tail:
        lines = lines[1:]  # the first line may be cut
    return {"exists": True, "lines": lines, "truncated": size > tail}


def collect_egress(spec: dict[str, object]) -> EgressFacts:
    out: EgressFacts = {}
    try:
        with open(str(spec["allowlist_file"]), encoding="utf-8") as handle:
            out["allowlist_lines"] = [ln.strip() for ln in handle
                                      if ln.strip() and not ln.lstrip().startswith("#")]
    except OSError as exc:
        out["allowlist_error"] = str(exc)
    destinations = cast(list[str], spec.get("destinations") or [])
    # In parallel: a refusal is instant, but a broken proxy costs a timeout each.
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = pool.map(lambda t: egress_verdict(spec, t), destinations)
        out["refusals"] = dict(zip(destinations, answers, strict=True))
    if spec.get("direct"):
        ip, port = str(spec["direct"]).rsplit(":", 1)
        # a dropped SYN is never answered; a reachable neighbour answers in milliseconds
        probe = ["timeout", "2", "bash", "-c", f"</dev/tcp/{ip}/{port}"]
        with ThreadPoolExecutor(max_workers=2) as pool:
            user_run = pool.submit(run_command,
                                   ["runuser", "-u", str(spec["user"]), "--", *probe], 8)
            root_run = pool.submit(run_command, probe, 8)
            as_user, as_root = user_run.result(), root_run.result()
        out["direct"] = {"user_rc": as_user["rc"], "user_err": as_user["err"].strip(),
                         "root_rc": as_root["rc"], "root_err": as_root["err"].strip()}
    if spec.get("log_file"):
        out["log"] = egress_log_tail(str(spec["log_file"]))
    return out


SECTIONS = (Section("egress", collect_egress,
                    (egress_connect, egress_verdict, egress_log_tail)),)


def egress_facts(facts: Facts) -> EgressFacts:
    return cast(EgressFacts, facts.section("egress"))


def enforced_allowlist(facts: Facts) -> list[str]:
    """``host:port`` of everything the proxy admits, read from its configuration."""
    e = egress_facts(facts)
    if "allowlist_lines" not in e:
        raise ValueError(f"the proxy's allowlist cannot be read: {e.get('allowlist_error')}")
    return proxy_conf.allowlist(e["allowlist_lines"])


def observed(facts: Facts) -> dict[str, egress_log.Destination] | None:
    """Every destination in the proxy's log since the last deploy (None: no log read)."""
    log = cast(EgressFacts, facts.raw.get("egress") or {}).get("log")
    if not isinstance(log, dict) or "lines" not in log:
        return None
    return egress_log.destinations(log["lines"], record.deploy_time(facts))


def fragment(ctx: Context, *, destinations: list[str], direct: str | None, log: bool
             ) -> Fragment:
    """What reading the proxy takes (reconciliation asks for the allowlist alone)."""
    plan, layout = ctx.plan, ctx.plan.layout
    return Fragment(sections={"egress": {
        "allowlist_file": layout.proxy_config, "log_file": layout.proxy_log if log else None,
        "destinations": sorted(destinations), "probe_app": plan.app.release is None,
        "app_port": plan.app.port, "proxy_port": plan.proxy_port, "direct": direct,
        "user": layout.app_user}})


# -- checks ------------------------------------------------------------------------------

def _fence_first(user: str, facts: Facts) -> Outcome:
    fenced = []
    for chain, rules in nftables(facts)["output_rules"].items():
        first = next((i for i, expr in enumerate(rules) if nft_rules.jumps_by_owner(expr)), None)
        if first is None:
            continue
        early = [i + 1 for i, expr in enumerate(rules[:first])
                 if nft_rules.accepts(expr) and not nft_rules.only_established(expr)]
        if early:
            return bad(f"{chain}: rule {', '.join(map(str, early))} accepts before the jump for "
                       f"{user} (rule {first + 1})")
        fenced.append(chain)
    if not fenced:
        return bad(f"no output chain matches the app user {user}")
    return ok(f"{user}'s jump precedes every other accept in {', '.join(fenced)}")


@dataclass(frozen=True)
class ScopeParams:
    scope: str
    user: str
    app_host: bool


def _scope(params: ScopeParams, facts: Facts) -> Outcome:
    nft = nftables(facts)
    if "error" in nft:
        return bad(f"`nft list ruleset` failed: {nft['error']}")
    outputs, chain_rules = nft["output_rules"], nft.get("chain_rules", {})
    found = []
    if params.app_host:
        fences = [f for chain, rules in outputs.items()
                  if (f := nft_rules.fence(chain, rules, chain_rules)) is not None]
        if not fences:
            return bad(f"{params.user} is not fenced: no output chain jumps it to a chain "
                       "that ends in a drop")
        found.append(f"{params.user} fenced by {', '.join(fences)}")
    if params.scope == "host":
        policy = {f"{c['family']} {c['table']}/{c['name']}": c.get("policy")
                  for c in nft["chains"] if c.get("hook") == "output"}
        accept_all = {chain: any(nft_rules.verdict_only(e, "accept") for e in rules)
                      for chain, rules in outputs.items()}
        dropping = [c for c in outputs if policy.get(c) == "drop" and not accept_all[c]]
        if not dropping:
            shown = ", ".join(f"{c} policy {policy.get(c)}"
                              + (" with an accept-all rule" if accept_all[c] else "")
                              for c in outputs) or "none"
            return bad(f"no output chain drops by default for every user (output chains: "
                       f"{shown})")
        found.append(f"every user's output dropped by default in {', '.join(dropping)}")
    return ok("; ".join(found) or "scope app: no app user on this host")


def _allowlist(allowlist: tuple[str, ...], facts: Facts) -> Outcome:
    found = enforced_allowlist(facts)
    extra = [d for d in found if d not in allowlist]
    missing = [d for d in sorted(allowlist) if d not in found]
    if extra or missing:
        return bad("; ".join(([f"not in the Plan: {', '.join(extra)}"] if extra else [])
                             + ([f"missing: {', '.join(missing)}"] if missing else [])))
    return ok(", ".join(found) or "empty (nothing may leave)")


def _refused(destination: str, facts: Facts) -> Outcome:
    answer = egress_facts(facts)["refusals"][destination]
    shown = f"proxy answered {answer.get('proxy_status')}: {answer.get('detail', '')}".strip()
    if answer.get("allowed") is False:
        return ok(shown)
    if answer.get("allowed") is None:
        return bad(f"no verdict from the proxy ({answer.get('detail')})")
    return bad(f"admitted by the proxy ({shown})")


@dataclass(frozen=True)
class DirectParams:
    target: str
    user: str
    scope: str


def _direct(params: DirectParams, facts: Facts) -> Outcome:
    d = egress_facts(facts)["direct"]
    target, user = params.target, params.user
    if d["user_rc"] == 0:
        return bad(f"{user} connected to {target} directly")
    if d["root_rc"] != 0 and params.scope == "host":
        # Scope host drops root's connection too unless the target is one of the
        # host's own allowances; egress.scope proves the default drop itself.
        return ok(f"{user} blocked (exit {d['user_rc']}); root blocked too (egress scope host)")
    if d["root_rc"] != 0:
        return bad(f"inconclusive: root cannot reach {target} either "
                   f"({d['root_err'] or 'exit ' + str(d['root_rc'])}), so the target proves "
                   "nothing about the firewall")
    return ok(f"{user} blocked (exit {d['user_rc']}), root connected")


def _observed(allowlist: tuple[str, ...], facts: Facts) -> Outcome:
    since = record.deploy_time(facts)
    log = egress_facts(facts)["log"]
    if "error" in log or not log.get("exists"):
        return bad(f"the proxy's log cannot be read: {log.get('error', 'it does not exist')}")
    seen = egress_log.destinations(log.get("lines", []), since)
    outside = sorted(d for d in seen if not egress_log.on_list(d, list(allowlist))
                     and egress_log.contacted(seen[d]))
    shown = ", ".join(f"{d} ({seen[d].describe()})" for d in sorted(seen)) or "none"
    if outside:
        return bad(f"contacted outside the list: {', '.join(outside)}; all since "
                   f"{since or 'the log began'}: {shown}")
    return ok(f"since {since or 'the log began'}: {shown}")


SCOPE = CheckDef("egress.scope", "egress", "the app user jumps to a chain ending in a drop; "
                 "with scope host the output chain also drops every user by default", _scope)
FENCE_FIRST = CheckDef("egress.fence_first", "egress", "the app user's jump comes before "
                       "every output accept but established/related", _fence_first)
ALLOWLIST = CheckDef("egress.allowlist", "egress", "the proxy admits exactly the Plan's "
                     "destinations", _allowlist)
UNLISTED_REFUSED = CheckDef("egress.unlisted_refused", "egress", "the proxy refuses a "
                            "destination on no list", _refused)
OBSERVED = CheckDef("egress.observed", "egress", "the proxy's log shows no destination off the "
                    "list contacted since the last deploy", _observed)
DIRECT_DROPPED = CheckDef("egress.direct_dropped", "egress", "the app user cannot connect to "
                          "another host of the deployment directly (root can)", _direct)
AI_REFUSED = CheckDef("egress.ai_refused", "egress", "per AI provider not chosen: the proxy "
                      "refuses its API", _refused, suffixed=True)
DEFS = (SCOPE, FENCE_FIRST, ALLOWLIST, UNLISTED_REFUSED, OBSERVED, DIRECT_DROPPED, AI_REFUSED)


def _scope_check(ctx: Context) -> AnyCheck:
    user, scope, app_host = ctx.plan.layout.app_user, ctx.plan.egress_scope, ctx.has("app")
    fenced = [f"{user} jumps to a chain that ends in a drop"] if app_host else []
    if scope == "host":
        expected = "; ".join([*fenced, "an output chain with policy drop and no accept-all "
                              "rule: every user's new connections dropped but for the "
                              "host's own allowances"])
        fix = ("redeploy: the egress role writes the output chain with policy drop; a policy "
               "changed to accept, or an accept-all rule added (by hand or by another tool), "
               "lets every user of the host out")
    else:
        expected = "; ".join(fenced or ["nothing to fence (scope app, no app on this host)"])
        fix = "redeploy: the egress role writes the app user's chain from the Plan"
    return SCOPE.make(ctx.host, ScopeParams(scope, user, app_host),
                      description=f"the firewall enforces egress scope {scope}",
                      expected=expected, fix=fix)


def part(ctx: Context) -> Part:
    checks = [_scope_check(ctx)]
    if not ctx.has("app"):
        return Part(checks)
    plan, host, user = ctx.plan, ctx.host, ctx.plan.layout.app_user
    allow = tuple(str(e) for e in plan.egress_allowlist)
    shown = ", ".join(allow) or "nothing"
    # Here, not at the top: the drift watch imports this module on hosts without pydantic.
    from selfhost.plan import AI_PROVIDER_HOSTS, Endpoint  # noqa: PLC0415
    unlisted = UNLISTED_DESTINATION
    checks += [
        FENCE_FIRST.make(host, user, description="no accept rule of the output path can serve "
                         "the app user",
                         expected=f"in each output chain that fences {user}, its jump comes "
                         "before every accept rule but the one for established/related "
                         "connections",
                         fix="redeploy: the egress role writes the output chain with the app "
                         "user's jump first; an accept rule inserted before it (by hand or by "
                         "another tool) lets the app user past its fence"),
        ALLOWLIST.make(host, allow, description="the proxy allows exactly the Plan's "
                       "destinations", expected=f"allowlist: {shown}",
                       fix="redeploy: the egress role writes the allowlist from the Plan; a "
                       "destination the Plan lacks is a third party the list does not name"),
        UNLISTED_REFUSED.make(host, unlisted, description="the proxy refuses an unlisted "
                              "destination", expected=f"CONNECT {unlisted} refused by the "
                              "proxy", fix="the proxy must deny everything outside its "
                              "allowlist; redeploy the egress role"),
        OBSERVED.make(host, allow, description="every destination contacted since the last "
                      "deploy is on the list",
                      expected=f"the proxy's log shows connections only to the allowlist "
                      f"({shown})",
                      fix="find which component contacted it (the proxy log has the time); "
                      "if it is a new third party, add it to the profile so the list names it"),
    ]
    target = ctx.direct_target
    if target is not None:
        checks.append(DIRECT_DROPPED.make(
            host, DirectParams(str(target), user, plan.egress_scope),
            description="the app user cannot connect out directly",
            expected=f"a direct TCP connection from {user} to {target} dropped (while root "
            "reaches it, so the firewall is what stops it)",
            fix="redeploy: the egress role's nftables output rules drop the app user's "
            "traffic except to the proxy and the Plan's database and cache"))
    listed = {e.host for e in plan.egress_allowlist}
    refused = [unlisted]
    for provider, ai_host in sorted(AI_PROVIDER_HOSTS.items()):
        if ai_host in listed:
            continue
        destination = str(Endpoint(host=ai_host, port=443))
        refused.append(destination)
        checks.append(AI_REFUSED.make(
            host, destination, suffix=provider,
            description=f"the {provider} API is unreachable (not chosen)",
            expected=f"CONNECT {destination} refused by the proxy",
            fix=f"remove {ai_host} from the proxy's allowlist (redeploy)"))
    return Part(checks, fragment(ctx, destinations=refused,
                                 direct=str(target) if target else None, log=True))


COMPONENT = Component("egress", DEFS, part, SECTIONS)
