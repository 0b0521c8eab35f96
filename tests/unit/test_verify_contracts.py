"""Every check evaluated on facts recorded from a deployed guest: passing as recorded,
failing once the facts are tampered with the way a broken host would show it.

The facts are the collector's output from a Debian 12 sandbox guest running the
us-openai preset (profile beside them; no secret is in either). A check id
without a passing and a failing row here fails ``test_every_check_has_both_cases``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from selfhost.paths import preset_path
from selfhost.plan import Endpoint, Plan, plan
from selfhost.profile_io import load_profile
from selfhost.verify.components import DEFS, generate
from selfhost.verify.contract import AnyCheck, Facts

DATA = Path(__file__).parent / "data" / "verify"
RECORDED = json.loads((DATA / "us-openai-chat1.facts.json").read_text())
#: the address verify aimed the direct-outbound probe at (the sandbox's apt cache)
DIRECT = Endpoint(host="10.213.71.1", port=3142)

Raw = dict[str, Any]
Tamper = Callable[[Raw], None]


def _recorded_plan() -> Plan:
    return plan(load_profile(DATA / "us-openai.yaml"))


def _split_plan() -> Plan:
    return plan(load_profile(preset_path("split")))


def _node(raw: Raw, keys: list[str]) -> Any:
    node: Any = raw
    for key in keys:
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def _set(path: str, value: object) -> Tamper:
    """Set the value at a path of the facts ("postgresql|settings|ssl"; a number
    indexes a list)."""
    def run(raw: Raw) -> None:
        *parents, last = path.split("|")
        node = _node(raw, parents)
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return run


def _both(*edits: Tamper) -> Tamper:
    def run(raw: Raw) -> None:
        for edit in edits:
            edit(raw)
    return run


def _append(path: str, value: object) -> Tamper:
    def run(raw: Raw) -> None:
        _node(raw, path.split("|")).append(value)
    return run


def _untouched(raw: Raw) -> None:
    del raw


# -- the split preset's db1 and cache1: the checks of a database reached over TLS

def _as_split_db(raw: Raw) -> None:
    """The recorded PostgreSQL as split's db1 shows it: TLS on, hostssl for the app hosts."""
    p = _split_plan()
    db = p.database
    raw["postgresql"]["settings"].update(ssl="on", ssl_key_file="/etc/postgresql/tls.key")
    raw["postgresql"]["ssl_key"] = {"exists": True, "mode": "0600", "owner": "postgres",
                                    "group": "postgres", "dir": False}
    raw["postgresql"]["hba"] += [
        {"line": 10 + i, "type": "hostssl", "database": ["backendchat"],
         "user": ["backendchat"], "address": client, "netmask": "255.255.255.255",
         "method": "scram-sha-256", "error": None}
        for i, client in enumerate(db.allowed_clients)]
    raw["listeners"] = [["0.0.0.0", 22], *[[a, db.port] for a in db.listen]]


def _stranger_hba(raw: Raw) -> None:
    _as_split_db(raw)
    raw["postgresql"]["hba"].append(
        {"line": 20, "type": "hostssl", "database": ["all"], "user": ["all"],
         "address": "192.0.2.10", "netmask": "255.255.255.255", "method": "scram-sha-256",
         "error": None})


def _plain_hba(raw: Raw) -> None:
    _as_split_db(raw)
    raw["postgresql"]["hba"][-1]["type"] = "host"


def _as_split_cache(raw: Raw) -> None:
    raw["redis_server"]["conf"].update({"port": ["0"], "tls-port": ["6380"]})


@dataclass(frozen=True)
class Case:
    check: str
    tamper: Tamper
    passes: bool
    #: what the found text says (a substring)
    found: str
    #: which Plan's checks: the recorded deployment or the split preset's host
    host: str = "chat1"


def ok(check: str, found: str, tamper: Tamper = _untouched, host: str = "chat1") -> Case:
    return Case(check, tamper, True, found, host)


def fails(check: str, tamper: Tamper, found: str, host: str = "chat1") -> Case:
    return Case(check, tamper, False, found, host)


CASES = [
    # host
    ok("host.nftables", "input policy drop in inet backend_chat/input"),
    fails("host.nftables", _set("units|nftables.service|ActiveState", "inactive"),
          "nftables.service inactive/exited"),
    fails("host.nftables", _set("nftables|skuid_rules", []),
          "no output rule matching the app user backendchat"),
    ok("host.sysctl", "settings as expected (container: net.* only"),
    fails("host.sysctl", _set("sysctl|net.ipv4.conf.all.rp_filter", "0"),
          "differs: net.ipv4.conf.all.rp_filter=0"),
    ok("host.secret_files", "all 0600"),
    fails("host.secret_files", _set("files|/etc/nginx/tls/server.key|mode", "0644"),
          "/etc/nginx/tls/server.key: mode 0644, owner root:root"),
    ok("host.exposed_ports", "ports 22, 5432", _as_split_db, host="db1"),
    fails("host.exposed_ports", _both(_as_split_db, _append("listeners", ["0.0.0.0", 6379])),
          "also listening beyond loopback on port(s) 6379", host="db1"),
    ok("host.deployment_record", "fingerprint sha256:cc662b06"),
    fails("host.deployment_record", _set("record|data|third_parties", [{"id": "openai"}]),
          "third_parties: ['openai'] (expected ['openai', 'sendgrid', 'sentry'])"),
    fails("host.deployment_record", _set("record", {"exists": False}),
          "no deployment record on the host"),
    # PostgreSQL
    ok("postgresql.running", "answers, data directory /var/lib/postgresql/15/main"),
    fails("postgresql.running", _set("postgresql", {"section_error": "RuntimeError: psql: "
                                                    "connection refused"}),
          "PostgreSQL does not answer: RuntimeError: psql: connection refused"),
    ok("postgresql.password_encryption", "password_encryption = scram-sha-256"),
    fails("postgresql.password_encryption", _set("postgresql|settings|password_encryption",
                                                 "md5"), "password_encryption = md5"),
    ok("postgresql.scram_secrets", "backendchat: scram-sha-256"),
    fails("postgresql.scram_secrets", _set("postgresql|roles", [
        {"name": "postgres", "secret": "none"}, {"name": "backendchat", "secret": "md5"}]),
          "without a SCRAM secret: backendchat (md5)"),
    ok("postgresql.hba_methods", "4 rules, methods peer, scram-sha-256"),
    fails("postgresql.hba_methods", _set("postgresql|hba|2|method", "trust"),
          "line 8: host 127.0.0.1/32 trust"),
    ok("postgresql.listen", "PostgreSQL listens on 127.0.0.1 port 5432"),
    fails("postgresql.listen", _append("listeners", ["0.0.0.0", 5432]),
          "PostgreSQL listens on 0.0.0.0, 127.0.0.1 port 5432"),
    ok("postgresql.connection_logging", "log_connections = on, log_disconnections = on"),
    fails("postgresql.connection_logging", _set("postgresql|settings|log_connections", "off"),
          "log_connections = off"),
    ok("postgresql.data_directory", "mode 0700, owner postgres:postgres"),
    fails("postgresql.data_directory", _set("postgresql|data_directory|mode", "0750"),
          "mode 0750"),
    ok("postgresql.hostssl_only", "hostssl", _as_split_db, host="db1"),
    fails("postgresql.hostssl_only", _stranger_hba, "not an app host: line 20: hostssl "
          "192.0.2.10", host="db1"),
    fails("postgresql.hostssl_only", _plain_hba, "not hostssl: line 11: host", host="db1"),
    ok("postgresql.ssl", "ssl = on", _as_split_db, host="db1"),
    fails("postgresql.ssl", _both(_as_split_db, _set("postgresql|settings|ssl", "off")),
          "ssl = off", host="db1"),
    # backups
    ok("backup.timer", "backend-chat-backup.timer active/waiting, enabled"),
    fails("backup.timer", _set("units|backend-chat-backup.timer|UnitFileState", "disabled"),
          "unit file disabled"),
    ok("backup.directory", "mode 0700, owner root:root"),
    fails("backup.directory", _set("files|/var/backups/backend-chat|mode", "0755"),
          "mode 0755, owner root:root"),
    # Redis
    ok("redis.running_as_redis", "processes owned by redis"),
    fails("redis.running_as_redis", _set("processes|redis-server", ["root"]),
          "processes owned by root"),
    ok("redis.bind", "Redis listens on 127.0.0.1 port 6379"),
    fails("redis.bind", _append("listeners", ["10.0.0.5", 6379]),
          "Redis listens on 10.0.0.5, 127.0.0.1 port 6379"),
    ok("redis.protected_mode", "protected-mode yes"),
    fails("redis.protected_mode", _set("redis_server|conf|protected-mode", ["no"]),
          "protected-mode no"),
    ok("redis.noauth_ping", "PING answered '-NOAUTH Authentication required.'"),
    fails("redis.noauth_ping", _set("redis_server|ping", "+PONG"), "PING answered '+PONG'"),
    ok("redis.config_file", "mode 0640, owner root:redis"),
    fails("redis.config_file", _set("redis_server|conf_stat|mode", "0644"), "mode 0644"),
    ok("redis.acl_file", "mode 0640, owner root:redis"),
    fails("redis.acl_file", _set("redis_server|acl_stat|mode", "0644"), "mode 0644"),
    fails("redis.acl_file", _set("redis_server|conf|aclfile", ["/tmp/users.acl"]),
          "(the configuration names /tmp/users.acl)"),
    fails("redis.acl_file", _set("redis_server|conf|aclfile", []),
          "the configuration names no aclfile (/etc/redis/users.acl expected)"),
    ok("redis.tls", "port 6379, tls-port 0"),
    fails("redis.tls", _set("redis_server|conf|tls-port", ["6380"]), "port 6379, tls-port 6380"),
    ok("redis.tls", "port 0, tls-port 6380", _as_split_cache, host="cache1"),
    fails("redis.tls", _untouched, "port 6379, tls-port 0", host="cache1"),
    ok("redis.app_user_config_refused", "as backendchat: CONFIG GET answered \"-NOPERM"),
    fails("redis.app_user_config_refused", _set("redis_app|config", "*2"),
          "as backendchat: CONFIG GET answered '*2'"),
    # egress
    ok("egress.scope", "backendchat fenced by inet backend_chat/app_egress"),
    fails("egress.scope", _set("nftables|chain_rules|inet backend_chat/app_egress", []),
          "backendchat is not fenced"),
    ok("egress.fence_first", "backendchat's jump precedes every other accept"),
    fails("egress.fence_first", lambda raw: raw["nftables"]["output_rules"][
        "inet backend_chat/output"].insert(0, [{"accept": None}]),
          "rule 1 accepts before the jump for backendchat"),
    ok("egress.allowlist", ".ingest.us.sentry.io:443, api.openai.com:443, smtp.sendgrid.net:587"),
    fails("egress.allowlist", lambda raw: raw["egress"]["allowlist_lines"].insert(
        0, "http_access allow all"), "not in the Plan: *:*"),
    ok("egress.unlisted_refused", "proxy answered 403"),
    fails("egress.unlisted_refused", _set(
        "egress|refusals|unlisted.selfhost-verify.invalid:443",
        {"allowed": True, "proxy_status": 200, "detail": "HTTP/1.1 200 Connection established"}),
          "admitted by the proxy (proxy answered 200"),
    ok("egress.ai_refused", "proxy answered 403"),
    fails("egress.ai_refused", _set("egress|refusals|api.anthropic.com:443",
                                    {"allowed": None, "detail": "timed out"}),
          "no verdict from the proxy (timed out)"),
    ok("egress.observed", "since 2026-12-02T06:02:14Z: api.anthropic.com:443 (13 refused"),
    fails("egress.observed", _append(
        "egress|log|lines", "1796191400.000  120 127.0.0.1 TCP_TUNNEL/200 4321 CONNECT "
        "api.anthropic.com:443 - HIER_DIRECT/192.0.2.7 -"),
          "contacted outside the list: api.anthropic.com:443"),
    ok("egress.direct_dropped", "backendchat blocked (exit 124), root connected"),
    fails("egress.direct_dropped", _set("egress|direct|user_rc", 0),
          "backendchat connected to 10.213.71.1:3142 directly"),
    fails("egress.direct_dropped", _set("egress|direct|root_rc", 124),
          "inconclusive: root cannot reach 10.213.71.1:3142 either"),
    # app
    ok("app.unit", "backend-chat.service active/running as backendchat, hardened"),
    fails("app.unit", _set("units|backend-chat.service|ProtectSystem", "no"),
          "ProtectSystem=no"),
    ok("app.env_file_mode", "mode 0600, owner backendchat:backendchat"),
    fails("app.env_file_mode", _set("files|/etc/backend-chat/app.env|owner", "root"),
          "mode 0600, owner root:backendchat"),
    ok("app.env_keys", "keys AI_MODELS, AI_PROVIDER"),
    fails("app.env_keys", _set("app|env|ANTHROPIC_API_KEY", None),
          "keys the Plan does not enable: ANTHROPIC_API_KEY"),
    fails("app.env_keys", _set("app|env|AI_PROVIDER", "anthropic"),
          "AI_PROVIDER='anthropic' (expected 'openai')"),
    ok("app.healthz", "HTTP 200; database: ok"),
    fails("app.healthz", _set("app|healthz|body|checks|cache|ok", False), "cache: FAILED"),
    # TLS and nginx
    ok("nginx.tls13", "handshake TLSv1.3"),
    fails("nginx.tls13", _set("tls|tls13", {"ok": False, "error": "ConnectionRefusedError"}),
          "refused: ConnectionRefusedError"),
    ok("nginx.tls12_refused", "refused: SSLError: [SSL: TLSV1_ALERT_PROTOCOL_VERSION]"),
    fails("nginx.tls12_refused", _set("tls|tls12", {"ok": True, "version": "TLSv1.2"}),
          "TLS 1.2 handshake accepted (TLSv1.2)"),
    ok("nginx.certificate", "valid for chat.example.com, expires Mar  2 06:00:35 2027 GMT"),
    fails("nginx.certificate", _set("tls|verified|days_left", 12.0), "(12 days)"),
    ok("nginx.config_test", "test is successful"),
    fails("nginx.config_test", _set("nginx|test", {"rc": 1, "output": "nginx: [emerg] "
                                                   "unknown directive \"bogus\" in /etc/nginx/"
                                                   "conf.d/x.conf:3\nnginx: configuration file "
                                                   "/etc/nginx/nginx.conf test failed"}),
          'nginx: [emerg] unknown directive "bogus" in /etc/nginx/conf.d/x.conf:3'),
    ok("nginx.hsts", "Strict-Transport-Security: max-age=63072000"),
    fails("nginx.hsts", _set("nginx|verified|headers|strict-transport-security", "max-age=600"),
          "Strict-Transport-Security: max-age=600"),
    ok("nginx.server_header", "Server: nginx"),
    fails("nginx.server_header", _set("nginx|verified|headers|server", "nginx/1.22.1"),
          "Server: nginx/1.22.1"),
    ok("nginx.unknown_host", "HTTPS: closed (SSLError"),
    fails("nginx.unknown_host", _set("nginx|unknown_http|status", "HTTP/1.1 200 OK"),
          "HTTP: HTTP/1.1 200 OK"),
    ok("nginx.workers_not_root", "workers owned by www-data"),
    fails("nginx.workers_not_root", _set("processes|nginx: worker process", ["root"]),
          "workers owned by root"),
    ok("nginx.exposed_ports", "ports 22, 80, 443"),
    fails("nginx.exposed_ports", _append("listeners", ["0.0.0.0", 8000]),
          "also listening beyond loopback on port(s) 8000"),
]


def _checks(host: str) -> list[AnyCheck]:
    if host == "chat1":
        return generate(_recorded_plan(), {"chat1": DIRECT})
    p = _split_plan()
    return [c for c in generate(p) if c.host == host]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.check}-{'ok' if c.passes else 'fail'}")
def test_check_on_recorded_facts(case: Case) -> None:
    raw = copy.deepcopy(RECORDED)
    case.tamper(raw)
    checks = [c for c in _checks(case.host) if c.definition.id == case.check]
    assert checks, f"{case.host} has no {case.check} check"
    outcomes = [c.evaluate(Facts(raw)) for c in checks]
    assert [(o.passed, case.found in o.found) for o in outcomes] == \
        [(case.passes, True)] * len(outcomes), [o.found for o in outcomes]


def test_every_check_has_both_cases() -> None:
    covered = {(c.check, c.passes) for c in CASES}
    missing = [f"{d.id} {'passing' if passes else 'failing'}" for d in DEFS
               for passes in (True, False) if (d.id, passes) not in covered]
    assert missing == []


def test_the_recorded_deployment_passes_every_check() -> None:
    outcomes = {c.key: c.evaluate(Facts(RECORDED)) for c in _checks("chat1")}
    assert {k: o.found for k, o in outcomes.items() if not o.passed} == {}
    assert len(outcomes) == 41


def test_a_section_that_failed_on_the_host_fails_its_checks_with_the_reason() -> None:
    raw = copy.deepcopy(RECORDED)
    raw["redis_server"] = {"section_error": "PermissionError: redis.conf"}
    check = next(c for c in _checks("chat1") if c.id == "redis.protected_mode")
    outcome = check.evaluate(Facts(raw))
    assert (outcome.passed, outcome.found) == (
        False, "could not be determined (collecting redis_server failed: PermissionError: "
               "redis.conf)")
