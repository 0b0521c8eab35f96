"""``selfhost certs``: every certificate of a deployment, as the hosts hold it.

Which files hold a certificate follows the Plan (the internal CA on every host,
each host's server certificate and the copies nginx, Redis and PostgreSQL
serve, a provided chain, certbot's ACME certificate). One ssh command per host,
all hosts at once, reads them: a small standard-library script returns only
the ``CERTIFICATE`` blocks of each file (a key that ended up in a certificate
file never leaves the host) and the state of certbot's renewal timer; the
certificates are parsed here.
"""

from __future__ import annotations

import base64
import datetime as dt
import inspect
import json
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from selfhost import pki
from selfhost.plan import Plan
from selfhost.targets import SshTarget, resolve
from selfhost.targets.ssh import ask_json

Kind = Literal["internal-ca", "internal", "provided", "acme"]
Level = Literal["ok", "warning", "critical"]
#: within this, a certificate needs renewing (deploy renews internal ones)
WARN_DAYS = 30
#: within this (or expired), ``certs`` exits 1
CRITICAL_DAYS = 7
SSH_TIMEOUT = 30
ACME_TIMER = "certbot.timer"


@dataclass(frozen=True)
class CertFile:
    """A file the Plan puts certificates in on one host."""

    path: str
    kind: Kind
    #: what it is for, in words ("nginx's served chain")
    role: str


@dataclass(frozen=True)
class CertInfo:
    host: str
    path: str
    kind: Kind
    role: str
    #: position in the file's chain (0: the leaf)
    index: int
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    names: list[str]
    sha256: str
    days_left: float

    @property
    def level(self) -> Level:
        if self.days_left < CRITICAL_DAYS:
            return "critical"
        return "warning" if self.days_left < WARN_DAYS else "ok"


@dataclass
class HostCerts:
    host: str
    certs: list[CertInfo] = field(default_factory=list)
    #: what is wrong beyond expiry: a file missing, the host unreachable, a timer off
    problems: list[str] = field(default_factory=list)
    #: ACME hosts: certbot.timer's ActiveState and next run
    acme_timer: dict[str, str] | None = None


def cert_files(plan: Plan) -> dict[str, list[CertFile]]:
    """The certificate files of every Plan host."""
    layout, tls = plan.layout, plan.tls
    wanted = pki.host_names(plan)
    has_ca = any(wanted.values())
    out: dict[str, list[CertFile]] = {}
    for host in plan.hosts:
        files: list[CertFile] = []
        if has_ca:
            files.append(CertFile(layout.ca_cert, "internal-ca", "internal CA (trusted)"))
        app = "app" in host.components
        provided = app and tls.mode == "provided"
        if wanted[host.name] or provided:
            kind: Kind = "provided" if provided else "internal"
            files.append(CertFile(layout.tls_cert, kind, "staged server certificate"))
            if "nginx" in host.components:
                files.append(CertFile(layout.nginx_tls_cert, kind, "served by nginx"))
            if host.name == plan.cache.server_host and plan.tls.internal:
                files.append(CertFile(layout.redis_tls_cert, kind, "served by Redis"))
                files.append(CertFile(layout.redis_tls_ca, "internal-ca",
                                      "Redis's copy of the internal CA"))
            if host.name == plan.database.server_host and plan.tls.internal:
                files.append(CertFile("/etc/postgresql/*/main/tls/server.crt", kind,
                                      "served by PostgreSQL"))
        if app and tls.mode == "acme":
            files.append(CertFile(f"{layout.acme_live_dir}/{tls.domain}/fullchain.pem",
                                  "acme", "served by nginx (renewed by certbot)"))
        out[host.name] = files
    return out


# -- on the host (standard library only; shipped as source) -------------------------

def read_cert_files(spec: dict[str, object]) -> dict[str, object]:
    import glob  # noqa: PLC0415 - runs on the host on its own
    import re  # noqa: PLC0415
    block = re.compile(r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")
    files: dict[str, object] = {}
    for pattern in spec["paths"]:  # type: ignore[attr-defined]
        found = sorted(glob.glob(pattern)) if "*" in pattern else [pattern]
        if not found:
            files[pattern] = {"error": "no such file"}
        for path in found:
            try:
                with open(path, encoding="ascii", errors="replace") as handle:
                    files[path] = {"pattern": pattern, "pem": block.findall(handle.read())}
            except OSError as exc:
                files[path] = {"pattern": pattern, "error": exc.strerror or str(exc)}
    out: dict[str, object] = {"files": files}
    if spec.get("timer"):
        done = subprocess.run(["systemctl", "show", str(spec["timer"]), "--property="
                               "ActiveState,UnitFileState,NextElapseUSecRealtime"],
                              capture_output=True, text=True, check=False, timeout=10)
        out["timer"] = dict(line.split("=", 1) for line in done.stdout.splitlines()
                            if "=" in line)
    return out


def remote_command(spec: dict[str, object]) -> str:
    """One ``python3`` command reading ``spec`` on a host (script and spec base64-encoded
    as arguments, so no quoting can break them; neither holds a secret)."""
    source = inspect.getsource(read_cert_files) + (
        "\nimport base64, json, sys\n"
        "print(json.dumps(read_cert_files(json.loads(base64.b64decode(sys.argv[-1])))))\n")
    code = base64.b64encode(source.encode()).decode()
    payload = base64.b64encode(json.dumps(spec).encode()).decode()
    loader = "import base64,sys;exec(base64.b64decode(sys.argv[1]))"
    return f"python3 -c {shlex.quote(loader)} {code} {payload}"


# -- on the controller ------------------------------------------------------------

def _run(target: SshTarget, spec: dict[str, object]) -> dict[str, object] | str:
    return ask_json(target, ["sh", "-c", remote_command(spec)], timeout=SSH_TIMEOUT)


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in san.get_values_for_type(x509.DNSName)] + \
        [str(v) for v in san.get_values_for_type(x509.IPAddress)]


def parse(host: str, files: list[CertFile], raw: dict[str, object] | str,
          now: dt.datetime) -> HostCerts:
    """One host's answer as certificates and problems."""
    result = HostCerts(host)
    if isinstance(raw, str):
        result.problems.append(f"not read: {raw}")
        return result
    by_pattern = {f.path: f for f in files}
    found = raw.get("files")
    for path, entry in sorted(found.items()) if isinstance(found, dict) else []:
        meta = by_pattern.get(entry.get("pattern", path)) or by_pattern.get(path)
        if meta is None:
            continue
        if "error" in entry:
            result.problems.append(f"{path} ({meta.role}): {entry['error']}")
            continue
        pems = entry.get("pem") or []
        if not pems:
            result.problems.append(f"{path} ({meta.role}): holds no certificate")
        for index, pem in enumerate(pems):
            try:
                cert = x509.load_pem_x509_certificate(pem.encode())
            except ValueError as exc:
                result.problems.append(f"{path}: certificate {index} does not parse ({exc})")
                continue
            result.certs.append(CertInfo(
                host=host, path=path, kind=meta.kind, role=meta.role, index=index,
                subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
                not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
                names=_names(cert), sha256=cert.fingerprint(hashes.SHA256()).hex(),
                days_left=(cert.not_valid_after_utc - now).total_seconds() / 86400))
    timer = raw.get("timer")
    if isinstance(timer, dict):
        result.acme_timer = {str(k): str(v) for k, v in timer.items()}
        if timer.get("ActiveState") != "active":
            result.problems.append(f"{ACME_TIMER} is {timer.get('ActiveState', 'unknown')}: "
                                   "certbot does not renew the ACME certificate "
                                   f"(systemctl enable --now {ACME_TIMER}, or redeploy)")
    return result


def collect(plan: Plan, targets: list[SshTarget], now: dt.datetime | None = None
            ) -> list[HostCerts]:
    """Every host's certificates, all hosts at once (one ssh command each)."""
    when = now or dt.datetime.now(dt.UTC)
    files = cert_files(plan)
    acme_hosts = {h.name for h in plan.hosts_with("app")} if plan.tls.mode == "acme" else set()
    by_name = {t.name: t for t in targets}
    names = [h.name for h in plan.hosts if files[h.name] or h.name in acme_hosts]

    def one(name: str) -> HostCerts:
        spec: dict[str, object] = {"paths": [f.path for f in files[name]]}
        if name in acme_hosts:
            spec["timer"] = ACME_TIMER
        return parse(name, files[name], _run(by_name[name], spec), when)

    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        return list(pool.map(one, names))


def certificates(profile_path: Path, *, inventory: Path | None = None,
                 sandbox: str | None = None) -> list[HostCerts]:
    """The certificates on the hosts of ``profile_path``'s deployment."""
    deployment = resolve(profile_path, inventory=inventory, sandbox=sandbox)
    return collect(deployment.plan, deployment.targets)


# -- reporting --------------------------------------------------------------------

def attention(hosts: list[HostCerts]) -> list[str]:
    """Why ``certs`` exits 1: a certificate expired or in its last week, a problem."""
    out = [f"{h.host}: {p}" for h in hosts for p in h.problems]
    for c in (c for h in hosts for c in h.certs if c.level == "critical"):
        state = "expired" if c.days_left < 0 else f"expires in {c.days_left:.0f} days"
        out.append(f"{c.host}: {c.path} ({c.subject}) {state}: {_renew(c)}")
    return out


def _renew(c: CertInfo) -> str:
    if c.kind == "provided":
        return ("replace the files tls.cert_file and tls.key_file name with a renewed "
                "certificate and key, then run `selfhost deploy`")
    if c.kind == "acme":
        return f"certbot renews it: see `journalctl -u certbot.service` on {c.host}"
    return "run `selfhost deploy` (it renews internal certificates within 30 days of expiry)"


def to_json(hosts: list[HostCerts]) -> dict[str, object]:
    return {
        "ok": not attention(hosts),
        "warn_days": WARN_DAYS, "critical_days": CRITICAL_DAYS,
        "attention": attention(hosts),
        "hosts": {h.host: {
            "problems": h.problems,
            "acme_timer": h.acme_timer,
            "certificates": [{
                "path": c.path, "kind": c.kind, "role": c.role, "index": c.index,
                "subject": c.subject, "issuer": c.issuer,
                "not_before": c.not_before.isoformat(), "not_after": c.not_after.isoformat(),
                "days_left": round(c.days_left, 2), "names": c.names, "sha256": c.sha256,
                "level": c.level} for c in h.certs]} for h in hosts},
    }


def render(hosts: list[HostCerts]) -> str:
    lines: list[str] = []
    for h in hosts:
        lines.append(f"{h.host}:")
        for c in h.certs:
            mark = {"ok": "ok  ", "warning": "WARN", "critical": "CRIT"}[c.level]
            chain = f" [{c.index}]" if c.index else ""
            lines.append(f"  {mark} {c.path}{chain}  {c.kind}, {c.role}")
            lines.append(f"       subject {c.subject}")
            lines.append(f"       issuer  {c.issuer}")
            lines.append(f"       expires {c.not_after:%Y-%m-%d %H:%M} UTC "
                         f"({c.days_left:.0f} days)")
        if h.acme_timer is not None:
            lines.append(f"  {ACME_TIMER}: {h.acme_timer.get('ActiveState', 'unknown')}, "
                         f"next run {h.acme_timer.get('NextElapseUSecRealtime') or 'none'}")
        lines += [f"  FAIL {p}" for p in h.problems]
    todo = attention(hosts)
    warned = sum(c.level == "warning" for h in hosts for c in h.certs)
    total = sum(len(h.certs) for h in hosts)
    lines.append("")
    lines.append(f"{total} certificates on {len(hosts)} hosts, {warned} to renew within "
                 f"{WARN_DAYS} days, {len(todo)} needing attention now")
    lines += [f"  {t}" for t in todo]
    return "\n".join(lines)
