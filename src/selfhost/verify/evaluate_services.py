"""Evaluation of the PostgreSQL, Redis and nginx checks against a host's facts. Pure."""

from __future__ import annotations

import ipaddress
from typing import Any

from selfhost.verify.checks import Check
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
from selfhost.verify.probes import REDIS_UNIT

WEAK_METHODS = ("trust", "password", "ident")
HSTS_MIN_AGE = 31536000
SCRAM = "scram-sha-256"


def _pg(facts: Facts) -> dict[str, Any]:
    return dict(section(facts, "postgresql"))


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


def _network(r: dict[str, Any]) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The addresses a pg_hba line admits (its address under its netmask), or None
    for a keyword or a host name."""
    try:
        address = ipaddress.ip_address(r.get("address") or "")
        mask = r.get("netmask")
        prefix = (bin(int(ipaddress.ip_address(mask))).count("1") if mask
                  else address.max_prefixlen)
    except ValueError:
        return None
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False)


def _hba_line(r: dict[str, Any]) -> str:
    network = _network(r)
    shown = f"{r['address']}/{network.prefixlen}" if network is not None else r.get("address")
    addr = f" {shown}" if shown else ""
    return f"line {r['line']}: {r['type']}{addr} {r['method']}"


def pg_hba_methods(check: Check, facts: Facts) -> Outcome:
    hba = _pg(facts)["hba"]
    errors = [f"line {r['line']}: {r['error']}" for r in hba if r.get("error")]
    weak = [_hba_line(r) for r in hba
            if r["type"].startswith("host") and r["method"] in WEAK_METHODS]
    if weak or errors:
        return bad("; ".join(weak + errors))
    return ok(f"{len(hba)} rules, methods " + ", ".join(sorted({r["method"] for r in hba})))


def _loopback(r: dict[str, Any]) -> bool:
    # The netmask counts: 127.0.0.1/0 is every address, not loopback.
    network = _network(r)
    if network is None:
        return r.get("address") in ("localhost", "samehost")
    return network.is_loopback


def pg_hostssl_only(check: Check, facts: Facts) -> Outcome:
    hba = _pg(facts)["hba"]
    remote = [r for r in hba if r["type"] != "local" and not _loopback(r)]
    plain = [_hba_line(r) for r in remote if r["type"] != "hostssl"]
    allowed = set(check.params["clients"])
    # An app host is one address: its address under a wider netmask admits others too.
    strangers = [_hba_line(r) for r in remote
                 if (n := _network(r)) is None or n.num_addresses != 1
                 or str(n.network_address) not in allowed]
    if plain or strangers:
        return bad("; ".join([f"not hostssl: {p}" for p in plain]
                             + [f"not an app host: {s}" for s in strangers]))
    return ok("; ".join(_hba_line(r) for r in remote) or "no remote lines")


def _listen(component: str) -> Evaluator:
    def run(check: Check, facts: Facts) -> Outcome:
        port = check.params["port"]
        found = sorted({a for a, _ in listening(facts, port)})
        want = sorted(check.params["listen"])
        shown = ", ".join(found) or "nothing"
        return (ok if found == want else bad)(f"{component} listens on {shown} port {port}")
    return run


def pg_ssl(check: Check, facts: Facts) -> Outcome:
    pg = _pg(facts)
    st = pg.get("ssl_key", {})
    found = f"ssl = {pg['settings'].get('ssl')}, key {pg['settings'].get('ssl_key_file')}: " \
            f"{describe_stat(st)}"
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
    return (ok if good else bad)(describe_stat(st))


# -- Redis -----------------------------------------------------------------------------

def _redis(facts: Facts) -> dict[str, Any]:
    return dict(section(facts, "redis_server"))


def redis_running(check: Check, facts: Facts) -> Outcome:
    active, state = unit_active(facts, REDIS_UNIT)
    owners = sorted(set(section(facts, "processes").get("redis-server", [])))
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
    return (ok if good else bad)(describe_stat(st))


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
    r = section(facts, "redis_app")
    if "error" in r:
        return bad(f"could not connect as the app: {r['error']}")
    if r["auth"] != "+OK":
        return bad(f"the app's own credentials were refused: {r['auth']!r}")
    return (ok if r["config"].startswith("-NOPERM") else bad)(
        f"as {r['user']}: CONFIG GET answered {r['config']!r}")


# -- nginx -----------------------------------------------------------------------------

def _nginx(facts: Facts) -> dict[str, Any]:
    return dict(section(facts, "nginx"))


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
    owners = sorted(set(section(facts, "processes").get("nginx: worker process", [])))
    good = bool(owners) and "root" not in owners
    return (ok if good else bad)(f"workers owned by {', '.join(owners) or 'nobody (none run)'}")


SERVICE_EVALUATORS: dict[str, Evaluator] = {
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
}
