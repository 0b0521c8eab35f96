"""nginx (the nginx role): a valid configuration, the headers it sends, no answer for
other host names, unprivileged workers, nothing exposed but HTTP(S) and ssh."""

from __future__ import annotations

from typing import TypedDict, cast

from selfhost.verify.components.host import exposed_ports, planned_ports
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
from selfhost.verify.remote_base import (
    TIMEOUT,
    run_command,
    tls_connect,
    unverified_context,
)

HSTS_MIN_AGE = 31536000
#: a name no certificate or server block of the deployment can carry
UNKNOWN_HOST = "unknown.selfhost-verify.invalid"
WORKER = "nginx: worker process"


class ConfigTest(TypedDict):
    rc: int | None
    output: str


class Response(TypedDict, total=False):
    error: str
    #: the status line, None when the server closed without answering
    status: str | None
    headers: dict[str, str]


class NginxFacts(TypedDict):
    test: ConfigTest
    #: GET / for the Plan's domain, the chain verified
    verified: Response
    unknown_https: Response
    unknown_http: Response


def nginx_https(addresses: list[str], verified: bool, ca: str, host: str
                ) -> Response:
    import os  # noqa: PLC0415 - shipped to the host on its own
    import ssl  # noqa: PLC0415
    ctx = ssl.create_default_context() if verified else unverified_context()
    if verified and os.path.exists(ca):
        ctx.load_verify_locations(cafile=ca)
    try:
        with tls_connect(addresses, ctx, host) as sock:
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                         .encode())
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except (OSError, ssl.SSLError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")
    headers: dict[str, str] = {}
    for line in head[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return {"status": head[0] if head and head[0] else None, "headers": headers}


def nginx_http(address: str, host: str) -> Response:
    import socket  # noqa: PLC0415 - shipped to the host on its own
    try:
        with socket.create_connection((address, 80), timeout=TIMEOUT) as sock:
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                         .encode())
            line = sock.makefile("rb").readline().decode(errors="replace").strip()
    except OSError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"status": line or None}


def collect_nginx(spec: dict[str, str | list[str]]) -> NginxFacts:
    addresses, domain, ca = list(spec["addresses"]), str(spec["domain"]), str(spec["ca"])
    unknown = str(spec["unknown_host"])
    test = run_command(["nginx", "-t"])
    return {"test": {"rc": test["rc"], "output": test["err"].strip()[-1000:]},
            "verified": nginx_https(addresses, True, ca, domain),
            "unknown_https": nginx_https(addresses, False, ca, unknown),
            "unknown_http": nginx_http(addresses[0], unknown)}


SECTIONS = (Section("nginx", collect_nginx, (nginx_https, nginx_http)),)


def _nginx(facts: Facts) -> NginxFacts:
    return cast(NginxFacts, facts.section("nginx"))


def _config_test(_: None, facts: Facts) -> Outcome:
    t = _nginx(facts)["test"]
    lines = t["output"].splitlines()
    if t["rc"] == 0:
        return ok(lines[-1] if lines else "exit 0")
    # `nginx -t` ends with "test failed"; the reason is on the [emerg] line before it.
    reasons = [line for line in lines if any(f"[{level}]" in line for level in
                                             ("emerg", "alert", "crit", "error"))]
    return bad("; ".join(reasons or lines) or f"exit {t['rc']}")


def _headers(facts: Facts) -> dict[str, str]:
    v = _nginx(facts)["verified"]
    if "error" in v:
        raise ValueError(f"no HTTPS response: {v['error']}")
    return v.get("headers", {})


def _hsts(_: None, facts: Facts) -> Outcome:
    value = _headers(facts).get("strict-transport-security")
    if value is None:
        return bad("no Strict-Transport-Security header")
    ages = [p.split("=", 1)[1] for p in value.replace(" ", "").split(";")
            if p.lower().startswith("max-age=")]
    good = bool(ages) and ages[0].isdigit() and int(ages[0]) >= HSTS_MIN_AGE
    return (ok if good else bad)(f"Strict-Transport-Security: {value}")


def _server_header(_: None, facts: Facts) -> Outcome:
    value = _headers(facts).get("server")
    good = value is None or not any(ch.isdigit() for ch in value)
    return (ok if good else bad)(f"Server: {value}" if value else "no Server header")


def _rejected(result: Response) -> tuple[bool, str]:
    if "error" in result:
        return True, f"closed ({result['error']})"
    status = result.get("status")
    if not status:
        return True, "connection closed without an answer"
    code = status.split()[1] if len(status.split()) > 1 else ""
    return code.startswith("4"), status


def _unknown_host(domain: str, facts: Facts) -> Outcome:
    n = _nginx(facts)
    # Rejecting strangers only counts from a server that answers for its own name.
    if "error" in n["verified"]:
        return bad(f"no answer for {domain} either ({n['verified']['error']})")
    https_ok, https = _rejected(n["unknown_https"])
    http_ok, http = _rejected(n["unknown_http"])
    return (ok if https_ok and http_ok else bad)(f"HTTPS: {https}; HTTP: {http}")


def _workers(_: None, facts: Facts) -> Outcome:
    procs: dict[str, list[str]] = facts.section("processes")
    owners = sorted(set(procs.get(WORKER, [])))
    good = bool(owners) and "root" not in owners
    return (ok if good else bad)(f"workers owned by {', '.join(owners) or 'nobody (none run)'}")


CONFIG_TEST = CheckDef("nginx.config_test", "nginx", "`nginx -t` succeeds", _config_test)
HSTS = CheckDef("nginx.hsts", "nginx", "HTTPS responses carry Strict-Transport-Security with "
                "max-age of at least a year", _hsts)
SERVER_HEADER = CheckDef("nginx.server_header", "nginx", "the Server header shows no version",
                         _server_header)
UNKNOWN = CheckDef("nginx.unknown_host", "nginx", "a request for an unknown host name gets "
                   "no content (closed, refused or 4xx), over HTTPS and HTTP", _unknown_host)
WORKERS = CheckDef("nginx.workers_not_root", "nginx", "nginx worker processes do not run as "
                   "root", _workers)
EXPOSED_PORTS = CheckDef("nginx.exposed_ports", "nginx", "on nginx hosts, only 80, 443, ssh "
                         "and the Plan's services listen beyond loopback", exposed_ports)
DEFS = (CONFIG_TEST, HSTS, SERVER_HEADER, UNKNOWN, WORKERS, EXPOSED_PORTS)


def part(ctx: Context) -> Part:
    if not ctx.has("nginx"):
        return Part()
    host, domain = ctx.host, ctx.plan.tls.domain
    ports = planned_ports(ctx)
    checks: list[AnyCheck] = [
        CONFIG_TEST.make(host, None, description="the nginx configuration is valid",
                         expected="`nginx -t` succeeds",
                         fix="run `nginx -t` on the host to see the error; redeploy to restore "
                         "the generated configuration"),
        HSTS.make(host, None, description="HTTPS responses carry HSTS",
                  expected="a Strict-Transport-Security header with max-age of at least one "
                  "year"),
        SERVER_HEADER.make(host, None, description="the Server header shows no version",
                           expected="`Server: nginx` without a version (server_tokens off)"),
        UNKNOWN.make(host, domain, description="requests for other host names are rejected",
                     expected="a request with an unknown Host header gets no content "
                     "(connection closed, handshake refused or a 4xx status)"),
        WORKERS.make(host, None, description="nginx workers do not run as root",
                     expected="every `nginx: worker process` owned by www-data"),
        EXPOSED_PORTS.make(host, ports, description="only HTTP and HTTPS are exposed",
                           expected=f"TCP ports {', '.join(map(str, ports))} beyond loopback "
                           "(80, 443 and ssh)",
                           fix="stop the extra service or bind it to 127.0.0.1"),
    ]
    return Part(checks, Fragment(
        sections={"nginx": {"addresses": ["127.0.0.1", host.address], "domain": domain,
                            "ca": ctx.plan.layout.ca_cert, "unknown_host": UNKNOWN_HOST}},
        processes=[WORKER]))


COMPONENT = Component("nginx", DEFS, part, SECTIONS)
