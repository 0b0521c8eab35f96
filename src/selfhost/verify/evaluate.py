"""A check against one host's collected facts -> passed or not, and what was found. Pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from selfhost.verify import egress_log, proxy_conf
from selfhost.verify.checks import Check
from selfhost.verify.probes import NFTABLES_UNIT, REDIS_UNIT

LOOPBACK = ("127.0.0.1", "::1")
WEAK_METHODS = ("trust", "password", "ident")
HSTS_MIN_AGE = 31536000
SCRAM = "scram-sha-256"


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


def _section(facts: Facts, name: str) -> Any:
    value = facts[name]
    if isinstance(value, dict) and "section_error" in value:
        raise ValueError(f"collecting {name} failed: {value['section_error']}")
    return value


def _listening(facts: Facts, port: int | None = None) -> list[tuple[str, int]]:
    return [(a, p) for a, p in _section(facts, "listeners") if port is None or p == port]


def _unit_active(facts: Facts, unit: str) -> tuple[bool, str]:
    props = _section(facts, "units").get(unit, {})
    state = f"{props.get('ActiveState', 'unknown')}/{props.get('SubState', 'unknown')}"
    return props.get("ActiveState") == "active", f"{unit} {state}"


# -- host -----------------------------------------------------------------------------

def host_nftables(check: Check, facts: Facts) -> Outcome:
    active, state = _unit_active(facts, NFTABLES_UNIT)
    nft = _section(facts, "nftables")
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
    values = _section(facts, "sysctl")
    in_container = _section(facts, "container")
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
    rec = _section(facts, "record")
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
    stats = _section(facts, "files")
    wrong = [f"{p}: {_describe_stat(stats.get(p, {}))}" for p in check.params["files"]
             if stats.get(p, {}).get("mode") != "0600"]
    return bad("; ".join(wrong)) if wrong else ok("all 0600")


def _describe_stat(st: dict[str, Any]) -> str:
    if not st.get("exists"):
        return f"missing ({st.get('error', 'not found')})"
    return f"mode {st['mode']}, owner {st['owner']}:{st['group']}"


def exposed_ports(check: Check, facts: Facts) -> Outcome:
    public = sorted({p for a, p in _listening(facts) if a not in LOOPBACK
                     and not a.startswith("127.")})
    extra = [p for p in public if p not in check.params["ports"]]
    if extra:
        return bad(f"also listening beyond loopback on port(s) {', '.join(map(str, extra))} "
                   f"(all: {', '.join(map(str, public))})")
    return ok(f"ports {', '.join(map(str, public))}")


# -- PostgreSQL ------------------------------------------------------------------------

def _pg(facts: Facts) -> dict[str, Any]:
    return dict(_section(facts, "postgresql"))


def pg_running(check: Check, facts: Facts) -> Outcome:
    pg = facts.get("postgresql", {})
    if "section_error" in pg:
        return bad(f"PostgreSQL does not answer: {pg['section_error']}")
    return ok(f"answers, data directory {pg['settings']['data_directory']}")


def _setting(name: str, want: str) -> Evaluator:
    def run(check: Check, facts: Facts) -> Outcome:
        value = _pg(facts)["settings"].get(name)
        return (ok if value == want else bad)(f"{name} = {value}")
    return run


def pg_scram(check: Check, facts: Facts) -> Outcome:
    roles = _pg(facts)["roles"]
    # postgres logs in by peer authentication on the local socket only: no secret.
    peer_only = {"name": "postgres", "secret": "none"}
    wrong = [f"{r['name']} ({r['secret']})" for r in roles
             if r["secret"] != SCRAM and r != peer_only]
    shown = ", ".join(f"{r['name']}: {r['secret']}" for r in roles)
    if check.params["user"] not in {r["name"] for r in roles}:
        return bad(f"the app's role {check.params['user']} does not exist (roles: {shown})")
    return bad(f"without a SCRAM secret: {', '.join(wrong)}") if wrong else ok(shown)


def _hba_line(r: dict[str, Any]) -> str:
    addr = f" {r['address']}" if r.get("address") else ""
    return f"line {r['line']}: {r['type']}{addr} {r['method']}"


def pg_hba_methods(check: Check, facts: Facts) -> Outcome:
    hba = _pg(facts)["hba"]
    errors = [f"line {r['line']}: {r['error']}" for r in hba if r.get("error")]
    weak = [_hba_line(r) for r in hba
            if r["type"].startswith("host") and r["method"] in WEAK_METHODS]
    if weak or errors:
        return bad("; ".join(weak + errors))
    return ok(f"{len(hba)} rules, methods " + ", ".join(sorted({r["method"] for r in hba})))


def _loopback(address: str | None) -> bool:
    if not address:
        return False
    if address in ("localhost", "samehost"):
        return True
    try:
        return ipaddress.ip_network(address, strict=False).is_loopback
    except ValueError:
        return False


def pg_hostssl_only(check: Check, facts: Facts) -> Outcome:
    hba = _pg(facts)["hba"]
    remote = [r for r in hba if r["type"] != "local" and not _loopback(r.get("address"))]
    plain = [_hba_line(r) for r in remote if r["type"] != "hostssl"]
    allowed = set(check.params["clients"])
    strangers = [_hba_line(r) for r in remote
                 if (r.get("address") or "").split("/")[0] not in allowed]
    if plain or strangers:
        return bad("; ".join([f"not hostssl: {p}" for p in plain]
                             + [f"not an app host: {s}" for s in strangers]))
    return ok("; ".join(_hba_line(r) for r in remote) or "no remote lines")


def _listen(component: str) -> Evaluator:
    def run(check: Check, facts: Facts) -> Outcome:
        port = check.params["port"]
        found = sorted({a for a, _ in _listening(facts, port)})
        want = sorted(check.params["listen"])
        shown = ", ".join(found) or "nothing"
        return (ok if found == want else bad)(f"{component} listens on {shown} port {port}")
    return run


def pg_ssl(check: Check, facts: Facts) -> Outcome:
    pg = _pg(facts)
    st = pg.get("ssl_key", {})
    found = f"ssl = {pg['settings'].get('ssl')}, key {pg['settings'].get('ssl_key_file')}: " \
            f"{_describe_stat(st)}"
    good = pg["settings"].get("ssl") == "on" and st.get("mode") == "0600" \
        and st.get("owner") == "postgres"
    return (ok if good else bad)(found)


def pg_logging(check: Check, facts: Facts) -> Outcome:
    s = _pg(facts)["settings"]
    found = f"log_connections = {s['log_connections']}, log_disconnections = " \
            f"{s['log_disconnections']}"
    return (ok if s["log_connections"] == s["log_disconnections"] == "on" else bad)(found)


def pg_data_directory(check: Check, facts: Facts) -> Outcome:
    st = _pg(facts)["data_directory"]
    good = st.get("exists") and st["owner"] == "postgres" and int(st["mode"], 8) & 0o077 == 0
    return (ok if good else bad)(_describe_stat(st))


# -- Redis -----------------------------------------------------------------------------

def _redis(facts: Facts) -> dict[str, Any]:
    return dict(_section(facts, "redis_server"))


def redis_running(check: Check, facts: Facts) -> Outcome:
    active, state = _unit_active(facts, REDIS_UNIT)
    owners = sorted(set(_section(facts, "processes").get("redis-server", [])))
    good = active and owners == ["redis"]
    return (ok if good else bad)(f"{state}; processes owned by {', '.join(owners) or 'none'}")


def redis_protected(check: Check, facts: Facts) -> Outcome:
    values = _redis(facts).get("conf", {}).get("protected-mode", [])
    value = values[-1] if values else "(not set: Redis defaults to yes)"
    return (ok if not values or values[-1].lower() == "yes" else bad)(f"protected-mode {value}")


def redis_noauth(check: Check, facts: Facts) -> Outcome:
    r = _redis(facts)
    if "ping_error" in r:
        return bad(f"could not ask: {r['ping_error']}")
    return (ok if r["ping"].startswith("-NOAUTH") else bad)(f"PING answered {r['ping']!r}")


def redis_config_file(check: Check, facts: Facts) -> Outcome:
    st = _redis(facts)["conf_stat"]
    good = st.get("exists") and st["group"] == "redis" and int(st["mode"], 8) & 0o007 == 0
    return (ok if good else bad)(_describe_stat(st))


def redis_tls(check: Check, facts: Facts) -> Outcome:
    conf = _redis(facts).get("conf", {})
    port = (conf.get("port") or ["6379"])[-1]
    tls_port = (conf.get("tls-port") or ["0"])[-1]
    found = f"port {port}, tls-port {tls_port}"
    want_port = str(check.params["port"])
    good = (port == "0" and tls_port == want_port) if check.params["tls"] else \
        (port == want_port and tls_port == "0")
    return (ok if good else bad)(found)


def redis_app_user(check: Check, facts: Facts) -> Outcome:
    r = _section(facts, "redis_app")
    if "error" in r:
        return bad(f"could not connect as the app: {r['error']}")
    if r["auth"] != "+OK":
        return bad(f"the app's own credentials were refused: {r['auth']!r}")
    return (ok if r["config"].startswith("-NOPERM") else bad)(
        f"as {r['user']}: CONFIG GET answered {r['config']!r}")


# -- nginx -----------------------------------------------------------------------------

def _nginx(facts: Facts) -> dict[str, Any]:
    return dict(_section(facts, "nginx"))


def nginx_test(check: Check, facts: Facts) -> Outcome:
    t = _nginx(facts)["test"]
    return (ok if t["rc"] == 0 else bad)(t["output"].splitlines()[-1] if t["output"]
                                         else f"exit {t['rc']}")


def nginx_tls13(check: Check, facts: Facts) -> Outcome:
    h = _nginx(facts)["tls13"]
    return ok(f"handshake {h['version']}") if h["ok"] else bad(f"refused: {h['error']}")


def nginx_tls12_refused(check: Check, facts: Facts) -> Outcome:
    n = _nginx(facts)
    h = n["tls12"]
    if h["ok"]:
        return bad(f"TLS 1.2 handshake accepted ({h['version']})")
    # A refusal only counts from a server that does speak TLS 1.3.
    if not n["tls13"]["ok"]:
        return bad(f"nothing answers TLS at all ({n['tls13']['error']})")
    return ok(f"refused: {h['error']}")


def nginx_certificate(check: Check, facts: Facts) -> Outcome:
    v = _nginx(facts)["verified"]
    if "error" in v:
        return bad(f"the chain does not verify for {check.params['domain']}: {v['error']}")
    days = v["days_left"]
    found = f"valid for {check.params['domain']}, expires {v['not_after']} ({days:.0f} days)"
    return (ok if days >= check.params["min_days"] else bad)(found)


def _headers(facts: Facts) -> dict[str, str]:
    v = _nginx(facts)["verified"]
    if "error" in v:
        raise ValueError(f"no HTTPS response: {v['error']}")
    return dict(v["headers"])


def nginx_hsts(check: Check, facts: Facts) -> Outcome:
    value = _headers(facts).get("strict-transport-security")
    if value is None:
        return bad("no Strict-Transport-Security header")
    ages = [p.split("=", 1)[1] for p in value.replace(" ", "").split(";")
            if p.lower().startswith("max-age=")]
    good = bool(ages) and ages[0].isdigit() and int(ages[0]) >= HSTS_MIN_AGE
    return (ok if good else bad)(f"Strict-Transport-Security: {value}")


def nginx_server_header(check: Check, facts: Facts) -> Outcome:
    value = _headers(facts).get("server")
    good = value is None or not any(ch.isdigit() for ch in value)
    return (ok if good else bad)(f"Server: {value}" if value else "no Server header")


def _rejected(result: dict[str, Any]) -> tuple[bool, str]:
    if "error" in result:
        return True, f"closed ({result['error']})"
    status = result.get("status")
    if not status:
        return True, "connection closed without an answer"
    code = status.split()[1] if len(status.split()) > 1 else ""
    return code.startswith("4"), status


def nginx_unknown_host(check: Check, facts: Facts) -> Outcome:
    n = _nginx(facts)
    # Rejecting strangers only counts from a server that answers for its own name.
    if "error" in n["verified"]:
        return bad(f"no answer for {check.params['domain']} either "
                   f"({n['verified']['error']})")
    https_ok, https = _rejected(n["unknown_https"])
    http_ok, http = _rejected(n["unknown_http"])
    return (ok if https_ok and http_ok else bad)(f"HTTPS: {https}; HTTP: {http}")


def nginx_workers(check: Check, facts: Facts) -> Outcome:
    owners = sorted(set(_section(facts, "processes").get("nginx: worker process", [])))
    good = bool(owners) and "root" not in owners
    return (ok if good else bad)(f"workers owned by {', '.join(owners) or 'nobody (none run)'}")


# -- app -------------------------------------------------------------------------------

def app_unit(check: Check, facts: Facts) -> Outcome:
    unit = check.params["unit"]
    props = _section(facts, "units").get(unit, {})
    active, state = _unit_active(facts, unit)
    wrong = [f"{k}={props.get(k)}" for k, v in check.params["hardening"].items()
             if props.get(k) != v]
    if props.get("User") != check.params["user"]:
        wrong.insert(0, f"User={props.get('User')}")
    if not active or wrong:
        return bad("; ".join([state, *wrong]))
    return ok(f"{state} as {props['User']}, hardened")


def app_env_mode(check: Check, facts: Facts) -> Outcome:
    st = _section(facts, "files").get(check.params["path"], {})
    good = st.get("mode") == "0600" and st.get("owner") == check.params["user"]
    return (ok if good else bad)(_describe_stat(st))


def app_env_keys(check: Check, facts: Facts) -> Outcome:
    a = _section(facts, "app")
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
    h = _section(facts, "app")["healthz"]
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

def egress_allowlist(check: Check, facts: Facts) -> Outcome:
    e = _section(facts, "egress")
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
    answer = _section(facts, "egress")["refusals"][check.params["destination"]]
    status = answer.get("proxy_status")
    shown = f"proxy answered {status}: {answer.get('detail', '')}".strip()
    if answer.get("allowed") is False:
        return ok(shown)
    if answer.get("allowed") is None:
        return bad(f"no verdict from the proxy ({answer.get('detail')})")
    return bad(f"admitted by the proxy ({shown})")


def egress_direct(check: Check, facts: Facts) -> Outcome:
    d = _section(facts, "egress")["direct"]
    target, user = check.params["target"], check.params["user"]
    if d["user_rc"] == 0:
        return bad(f"{user} connected to {target} directly")
    if d["root_rc"] != 0:
        return bad(f"inconclusive: root cannot reach {target} either "
                   f"({d['root_err'] or 'exit ' + str(d['root_rc'])}), so the target proves "
                   "nothing about the firewall")
    return ok(f"{user} blocked (exit {d['user_rc']}), root connected")


def egress_observed(check: Check, facts: Facts) -> Outcome:
    since = egress_log.deploy_time(_section(facts, "record"))
    log = _section(facts, "egress")["log"]
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
    "host.nftables": host_nftables,
    "host.sysctl": host_sysctl,
    "host.deployment_record": host_deployment_record,
    "host.secret_files": host_secret_files,
    "host.exposed_ports": exposed_ports,
    "postgresql.running": pg_running,
    "postgresql.password_encryption": _setting("password_encryption", SCRAM),
    "postgresql.scram_secrets": pg_scram,
    "postgresql.hba_methods": pg_hba_methods,
    "postgresql.hostssl_only": pg_hostssl_only,
    "postgresql.listen": _listen("PostgreSQL"),
    "postgresql.ssl": pg_ssl,
    "postgresql.connection_logging": pg_logging,
    "postgresql.data_directory": pg_data_directory,
    "redis.running_as_redis": redis_running,
    "redis.bind": _listen("Redis"),
    "redis.protected_mode": redis_protected,
    "redis.noauth_ping": redis_noauth,
    "redis.config_file": redis_config_file,
    "redis.tls": redis_tls,
    "redis.app_user_config_refused": redis_app_user,
    "nginx.config_test": nginx_test,
    "nginx.tls13": nginx_tls13,
    "nginx.tls12_refused": nginx_tls12_refused,
    "nginx.certificate": nginx_certificate,
    "nginx.hsts": nginx_hsts,
    "nginx.server_header": nginx_server_header,
    "nginx.unknown_host": nginx_unknown_host,
    "nginx.workers_not_root": nginx_workers,
    "nginx.exposed_ports": exposed_ports,
    "app.unit": app_unit,
    "app.env_file_mode": app_env_mode,
    "app.env_keys": app_env_keys,
    "app.healthz": app_healthz,
    "egress.allowlist": egress_allowlist,
    "egress.unlisted_refused": egress_refused,
    "egress.ai_refused": egress_refused,
    "egress.direct_dropped": egress_direct,
    "egress.observed": egress_observed,
}
