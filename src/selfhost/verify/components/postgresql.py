"""PostgreSQL (the postgresql role): running, SCRAM only, pg_hba, listen addresses, TLS,
connection logging, a private data directory."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict, cast

from selfhost.verify.contract import (
    AnyCheck,
    CheckDef,
    Component,
    Context,
    Evaluation,
    Facts,
    Fragment,
    Outcome,
    P,
    Part,
    Section,
    bad,
    listening,
    ok,
)
from selfhost.verify.remote_base import StatFacts, describe_stat, run_command, stat_path

WEAK_METHODS = ("trust", "password", "ident")
SCRAM = "scram-sha-256"


class RoleFacts(TypedDict):
    name: str
    #: the kind of the role's secret only: scram-sha-256, md5, other or none
    secret: str


class HbaLine(TypedDict):
    line: int
    type: str
    database: list[str] | None
    user: list[str] | None
    address: str | None
    netmask: str | None
    method: str
    error: str | None


class PgFacts(TypedDict):
    settings: dict[str, str]
    roles: list[RoleFacts]
    hba: list[HbaLine]
    data_directory: StatFacts
    ssl_key: StatFacts


def psql_json(sql: str) -> object:
    res = run_command(["runuser", "-u", "postgres", "--", "psql", "-XAtq", "-v",
                       "ON_ERROR_STOP=1", "-d", "postgres", "-c", sql])
    if res["rc"] != 0:
        raise RuntimeError((res["err"] or "psql failed").strip())
    return json.loads(res["out"])


def collect_postgresql(_: object) -> PgFacts:
    settings = cast("dict[str, str]", psql_json(
        "SELECT json_object_agg(name, setting) FROM pg_settings WHERE name IN "
        "('password_encryption','ssl','log_connections','log_disconnections',"
        "'listen_addresses','port','data_directory','hba_file','ssl_key_file')"))
    # Only the kind of each secret leaves the host, never the secret itself.
    roles = cast("list[RoleFacts]", psql_json(
        "SELECT coalesce(json_agg(json_build_object('name', rolname, 'secret', CASE "
        "WHEN rolpassword IS NULL THEN 'none' WHEN rolpassword LIKE 'SCRAM-SHA-256$%' "
        "THEN 'scram-sha-256' WHEN rolpassword LIKE 'md5%' THEN 'md5' ELSE 'other' END)), "
        "'[]') FROM pg_authid WHERE rolcanlogin"))
    hba = cast("list[HbaLine]", psql_json(
        "SELECT coalesce(json_agg(json_build_object('line', line_number, 'type', type, "
        "'database', database, 'user', user_name, 'address', address, 'netmask', netmask, "
        "'method', auth_method, 'error', error) ORDER BY line_number), '[]') "
        "FROM pg_hba_file_rules"))
    return {"settings": settings, "roles": roles, "hba": hba,
            "data_directory": stat_path(settings.get("data_directory", "")),
            "ssl_key": stat_path(settings.get("ssl_key_file", ""))}


SECTIONS = (Section("postgresql", collect_postgresql, (psql_json,)),)


def _pg(facts: Facts) -> PgFacts:
    return cast(PgFacts, facts.section("postgresql"))


# -- checks ------------------------------------------------------------------------------

def _running(_: None, facts: Facts) -> Outcome:
    if (error := facts.error("postgresql")) is not None:
        return bad(f"PostgreSQL does not answer: {error}")
    return ok(f"answers, data directory {_pg(facts)['settings']['data_directory']}")


def _password_encryption(_: None, facts: Facts) -> Outcome:
    value = _pg(facts)["settings"].get("password_encryption")
    return (ok if value == SCRAM else bad)(f"password_encryption = {value}")


def _scram(user: str, facts: Facts) -> Outcome:
    roles = _pg(facts)["roles"]
    # postgres logs in by peer authentication on the local socket only: no secret.
    peer_only = {"name": "postgres", "secret": "none"}
    wrong = [f"{r['name']} ({r['secret']})" for r in roles
             if r["secret"] != SCRAM and r != peer_only]
    shown = ", ".join(f"{r['name']}: {r['secret']}" for r in roles)
    if user not in {r["name"] for r in roles}:
        return bad(f"the app's role {user} does not exist (roles: {shown})")
    return bad(f"without a SCRAM secret: {', '.join(wrong)}") if wrong else ok(shown)


def _network(r: HbaLine) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
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


def _hba_line(r: HbaLine) -> str:
    network = _network(r)
    shown = f"{r['address']}/{network.prefixlen}" if network is not None else r.get("address")
    addr = f" {shown}" if shown else ""
    return f"line {r['line']}: {r['type']}{addr} {r['method']}"


def _hba_methods(_: None, facts: Facts) -> Outcome:
    hba = _pg(facts)["hba"]
    errors = [f"line {r['line']}: {r['error']}" for r in hba if r.get("error")]
    weak = [_hba_line(r) for r in hba
            if r["type"].startswith("host") and r["method"] in WEAK_METHODS]
    if weak or errors:
        return bad("; ".join(weak + errors))
    return ok(f"{len(hba)} rules, methods " + ", ".join(sorted({r["method"] for r in hba})))


def _loopback(r: HbaLine) -> bool:
    # The netmask counts: 127.0.0.1/0 is every address, not loopback.
    network = _network(r)
    if network is None:
        return r.get("address") in ("localhost", "samehost")
    return network.is_loopback


def _hostssl_only(clients: tuple[str, ...], facts: Facts) -> Outcome:
    hba = _pg(facts)["hba"]
    remote = [r for r in hba if r["type"] != "local" and not _loopback(r)]
    plain = [_hba_line(r) for r in remote if r["type"] != "hostssl"]
    # An app host is one address: its address under a wider netmask admits others too.
    strangers = [_hba_line(r) for r in remote
                 if (n := _network(r)) is None or n.num_addresses != 1
                 or str(n.network_address) not in clients]
    if plain or strangers:
        return bad("; ".join([f"not hostssl: {p}" for p in plain]
                             + [f"not an app host: {s}" for s in strangers]))
    return ok("; ".join(_hba_line(r) for r in remote) or "no remote lines")


@dataclass(frozen=True)
class ListenParams:
    listen: tuple[str, ...]
    port: int


def listen_evaluation(service: str) -> Callable[[ListenParams, Facts], Outcome]:
    """The service listens on exactly the Plan's addresses (Redis's bind check too)."""
    def run(params: ListenParams, facts: Facts) -> Outcome:
        found = sorted({a for a, _ in listening(facts, params.port)})
        shown = ", ".join(found) or "nothing"
        return (ok if found == sorted(params.listen) else bad)(
            f"{service} listens on {shown} port {params.port}")
    return run


def _ssl(_: None, facts: Facts) -> Outcome:
    pg = _pg(facts)
    st = pg["ssl_key"]
    found = (f"ssl = {pg['settings'].get('ssl')}, key {pg['settings'].get('ssl_key_file')}: "
             f"{describe_stat(st)}")
    good = (pg["settings"].get("ssl") == "on" and st.get("mode") == "0600"
            and st.get("owner") == "postgres")
    return (ok if good else bad)(found)


def _logging(_: None, facts: Facts) -> Outcome:
    s = _pg(facts)["settings"]
    found = (f"log_connections = {s['log_connections']}, log_disconnections = "
             f"{s['log_disconnections']}")
    return (ok if s["log_connections"] == s["log_disconnections"] == "on" else bad)(found)


def _data_directory(_: None, facts: Facts) -> Outcome:
    st = _pg(facts)["data_directory"]
    good = (bool(st.get("exists")) and st.get("owner") == "postgres"
            and int(st.get("mode", "7777"), 8) & 0o077 == 0)
    return (ok if good else bad)(describe_stat(st))


def _def(name: str, summary: str, evaluate: Evaluation[P]) -> CheckDef[P]:
    return CheckDef(f"postgresql.{name}", "postgresql", summary, evaluate)


RUNNING = _def("running", "PostgreSQL answers `SELECT 1`", _running)
PASSWORD_ENCRYPTION = _def("password_encryption", "password_encryption = scram-sha-256",
                           _password_encryption)
SCRAM_SECRETS = _def("scram_secrets", "every login role has a SCRAM-SHA-256 secret (postgres, "
                     "peer-authenticated, has none)", _scram)
HBA_METHODS = _def("hba_methods", "no pg_hba.conf host line uses trust, password or ident",
                   _hba_methods)
LISTEN = _def("listen", "PostgreSQL listens on the Plan's addresses and port only",
              listen_evaluation("PostgreSQL"))
CONNECTION_LOGGING = _def("connection_logging", "log_connections and log_disconnections "
                          "are on", _logging)
DATA_DIRECTORY = _def("data_directory", "the data directory is owned by postgres, mode 0700 "
                      "or stricter", _data_directory)
HOSTSSL_ONLY = _def("hostssl_only", "when reached from other hosts: every non-loopback "
                    "pg_hba line is hostssl and names an app host", _hostssl_only)
SSL = _def("ssl", "when reached from other hosts: ssl = on, its key mode 0600 owned by "
           "postgres", _ssl)
DEFS = (RUNNING, PASSWORD_ENCRYPTION, SCRAM_SECRETS, HBA_METHODS, LISTEN, CONNECTION_LOGGING,
        DATA_DIRECTORY, HOSTSSL_ONLY, SSL)


def part(ctx: Context) -> Part:
    if not ctx.has("postgresql"):
        return Part()
    db, host = ctx.plan.database, ctx.host
    checks: list[AnyCheck] = [
        RUNNING.make(host, None, description="PostgreSQL is running and answers",
                     expected="the postgresql service active and `SELECT 1` answered",
                     fix="`systemctl status postgresql@*` and `journalctl -u postgresql@*` on "
                     "the host show why it stopped; then redeploy"),
        PASSWORD_ENCRYPTION.make(host, None, description="new passwords are stored as SCRAM",
                                 expected="password_encryption = scram-sha-256"),
        SCRAM_SECRETS.make(host, db.user, description="every login role has a SCRAM secret",
                           expected=f"every login role (here {db.user}) has a SCRAM-SHA-256 "
                           "secret; only postgres, reached by peer authentication on the "
                           "local socket, has none",
                           fix="set the role's password again with password_encryption="
                           "scram-sha-256 (redeploy does it)"),
        HBA_METHODS.make(host, None, description="pg_hba.conf has no weak methods",
                         expected="no host line with trust, password or ident",
                         fix="remove the line from pg_hba.conf (or redeploy, which rewrites "
                         "it) and reload PostgreSQL"),
        LISTEN.make(host, ListenParams(tuple(db.listen), db.port),
                    description="PostgreSQL listens only where the Plan says",
                    expected=f"listening on {', '.join(db.listen)} port {db.port} only"),
        CONNECTION_LOGGING.make(host, None, description="connections are logged",
                                expected="log_connections = on and log_disconnections = on"),
        DATA_DIRECTORY.make(host, None, description="the data directory is private",
                            expected="data directory owned by postgres, no group or other "
                            "permissions (0700)",
                            fix="`chmod 0700` the data directory (PostgreSQL refuses to "
                            "start otherwise after a restart)"),
    ]
    if db.tls:
        checks += [
            HOSTSSL_ONLY.make(host, tuple(db.allowed_clients),
                              description="remote clients must use TLS",
                              expected="every pg_hba line for a non-loopback address is "
                              "hostssl, and only the app hosts "
                              f"({', '.join(db.allowed_clients)}) are allowed"),
            SSL.make(host, None, description="TLS is on for remote clients",
                     expected="ssl = on, its key file mode 0600 owned by postgres"),
        ]
    return Part(checks, Fragment(sections={"postgresql": None}))


COMPONENT = Component("postgresql", DEFS, part, SECTIONS)
