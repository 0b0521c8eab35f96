"""TLS (the tls role, served by nginx): the protocol versions a client gets, the
certificate it is shown, and the private keys only their owner may read.

The ids are ``nginx.*``: nginx is where a client meets the deployment's TLS.
"""

from __future__ import annotations

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
    ok,
    warn,
)
from selfhost.verify.remote_base import tls_connect, unverified_context

#: a certificate closer to its end than this fails (renewal is overdue)
MIN_DAYS = 30
#: provided certificates are renewed by the customer: a warning from MIN_DAYS on, a
#: failure only this close to the end
PROVIDED_MIN_DAYS = 7


class Handshake(TypedDict, total=False):
    ok: bool
    version: str | None
    error: str


class ChainFacts(TypedDict, total=False):
    error: str
    not_after: str | None
    days_left: float | None


class TlsFacts(TypedDict):
    tls13: Handshake
    tls12: Handshake
    #: the chain as a client trusting the Plan's CA (and the system's) sees it
    verified: ChainFacts


def tls_handshake(addresses: list[str], version: str, sni: str) -> Handshake:
    import ssl  # noqa: PLC0415 - shipped to the host on its own
    ctx = unverified_context()
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion[version]
    try:
        with tls_connect(addresses, ctx, sni) as sock:
            return {"ok": True, "version": sock.version()}
    except (OSError, ssl.SSLError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def tls_chain(addresses: list[str], domain: str, ca: str) -> ChainFacts:
    import os  # noqa: PLC0415 - shipped to the host on its own
    import ssl  # noqa: PLC0415
    import time  # noqa: PLC0415
    ctx = ssl.create_default_context()
    if os.path.exists(ca):
        ctx.load_verify_locations(cafile=ca)
    try:
        with tls_connect(addresses, ctx, domain) as sock:
            cert = sock.getpeercert()
    except (OSError, ssl.SSLError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    not_after = cert.get("notAfter") if cert else None
    if not isinstance(not_after, str):
        return {"not_after": None, "days_left": None}
    return {"not_after": not_after,
            "days_left": (ssl.cert_time_to_seconds(not_after) - time.time()) / 86400}


def collect_tls(spec: dict[str, str | list[str]]) -> TlsFacts:
    addresses, domain = list(spec["addresses"]), str(spec["domain"])
    return {"tls13": tls_handshake(addresses, "TLSv1_3", domain),
            "tls12": tls_handshake(addresses, "TLSv1_2", domain),
            "verified": tls_chain(addresses, domain, str(spec["ca"]))}


SECTIONS = (Section("tls", collect_tls, (tls_handshake, tls_chain)),)


def _tls(facts: Facts) -> TlsFacts:
    return cast(TlsFacts, facts.section("tls"))


def _tls13(_: None, facts: Facts) -> Outcome:
    h = _tls(facts)["tls13"]
    return ok(f"handshake {h.get('version')}") if h.get("ok") else bad(f"refused: {h['error']}")


def _tls12_refused(_: None, facts: Facts) -> Outcome:
    t = _tls(facts)
    h = t["tls12"]
    if h.get("ok"):
        return bad(f"TLS 1.2 handshake accepted ({h.get('version')})")
    # A refusal only counts from a server that does speak TLS 1.3.
    if not t["tls13"].get("ok"):
        return bad(f"nothing answers TLS at all ({t['tls13'].get('error')})")
    return ok(f"refused: {h.get('error')}")


@dataclass(frozen=True)
class CertParams:
    domain: str
    min_days: int
    #: warn (and still pass) below this many days; None: no warning level
    warn_days: int | None = None
    #: the host file a warning or failure names as the one to replace
    path: str = ""


def _certificate(params: CertParams, facts: Facts) -> Outcome:
    v = _tls(facts)["verified"]
    if "error" in v:
        return bad(f"the chain does not verify for {params.domain}: {v['error']}")
    days = v.get("days_left")
    if days is None:
        return bad(f"the certificate for {params.domain} has no expiry date")
    found = f"valid for {params.domain}, expires {v.get('not_after')} ({days:.0f} days)"
    if days < params.min_days:
        return bad(found + (f"; replace {params.path}" if params.path else ""))
    if params.warn_days is not None and days < params.warn_days:
        return warn(f"{found}; renew it soon: replace {params.path}")
    return ok(found)


TLS13 = CheckDef("nginx.tls13", "nginx", "a TLS 1.3 handshake succeeds", _tls13)
TLS12_REFUSED = CheckDef("nginx.tls12_refused", "nginx", "with minimum 1.3: a TLS 1.2-only "
                         "handshake fails (while 1.3 succeeds)", _tls12_refused)
CERTIFICATE = CheckDef("nginx.certificate", "nginx", "the chain verifies for the domain and "
                       f"does not expire within {MIN_DAYS} days (a provided one: a warning "
                       f"within {MIN_DAYS}, a failure within {PROVIDED_MIN_DAYS})",
                       _certificate)
DEFS = (TLS13, TLS12_REFUSED, CERTIFICATE)


def secret_files(ctx: Context) -> list[str]:
    layout, tls = ctx.plan.layout, ctx.plan.tls
    if ctx.has("app"):
        return [layout.tls_key, layout.nginx_tls_key] if tls.mode != "acme" else []
    return [layout.tls_key] if tls.internal else []


def part(ctx: Context) -> Part:
    if not ctx.has("nginx"):
        return Part()
    tls, host = ctx.plan.tls, ctx.host
    checks: list[AnyCheck] = [
        TLS13.make(host, None, description="TLS 1.3 is accepted",
                   expected="a TLS 1.3 handshake succeeds"),
    ]
    if tls.min_version == "1.3":
        checks.append(TLS12_REFUSED.make(
            host, None, description="TLS 1.2 is refused (minimum 1.3)",
            expected="a TLS 1.2-only handshake fails",
            fix="set `ssl_protocols TLSv1.3;` in every server block (or redeploy) and reload "
            "nginx"))
    if tls.mode == "provided":
        checks.append(_provided_certificate(ctx))
        return _with_facts(ctx, checks)
    checks.append(CERTIFICATE.make(
        host, CertParams(tls.domain, MIN_DAYS),
        description="the certificate is valid for the domain",
        expected=f"a chain that verifies for {tls.domain} and does not expire within "
        f"{MIN_DAYS} days",
        fix="renew or replace the certificate (`selfhost deploy` renews internal ones; in "
        "provided mode update tls.cert_file)"))
    return _with_facts(ctx, checks)


def _provided_certificate(ctx: Context) -> AnyCheck:
    """The customer renews a provided certificate: warn a month ahead, fail in the last
    week, and name the file (the profile's tls.cert_file, deployed to nginx's copy)."""
    tls, served = ctx.plan.tls, ctx.plan.layout.nginx_tls_cert
    return CERTIFICATE.make(
        ctx.host, CertParams(tls.domain, PROVIDED_MIN_DAYS, MIN_DAYS, served),
        description="the provided certificate is valid for the domain",
        expected=f"a chain that verifies for {tls.domain} and does not expire within "
        f"{PROVIDED_MIN_DAYS} days (a warning within {MIN_DAYS})",
        fix=f"replace the files tls.cert_file and tls.key_file name in the profile with a "
        f"renewed certificate and key, then run `selfhost deploy` (it installs them as "
        f"{served})")


def _with_facts(ctx: Context, checks: list[AnyCheck]) -> Part:
    tls, host = ctx.plan.tls, ctx.host
    return Part(checks, Fragment(sections={"tls": {
        "addresses": ["127.0.0.1", host.address], "domain": tls.domain,
        "ca": ctx.plan.layout.ca_cert}}))


COMPONENT = Component("tls", DEFS, part, SECTIONS, secret_files)
