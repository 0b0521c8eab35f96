"""``status()``: the deployment at a glance, from each host's drift status file.

Each host is asked once over ssh for the file its drift watch wrote
(:mod:`selfhost.drift.host`) and for the state of the drift timer; nothing is
collected or judged anew here, which keeps ``status`` within a few seconds. What
the file cannot know is added on the controller: whether the profile on disk is
still the one deployed (its fingerprint against the host's deployment record).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from selfhost.targets import Deployment, SshTarget, resolve
from selfhost.targets.ssh import failure, run_on

#: ssh gives up on a host after this long (the file is small; a slow host is news)
SSH_TIMEOUT = 20
#: a certificate with fewer days left needs attention (exit 1); under WARN_DAYS a note
CERT_CRITICAL_DAYS = 7
CERT_WARN_DAYS = 30
#: the backup timer runs daily: an archive older than this is a missed backup
BACKUP_MAX_AGE_HOURS = 26
#: the drift check is overdue after this many intervals (and a grace for the run itself)
STALE_INTERVALS = 2
STALE_GRACE_SECONDS = 300


@dataclass
class HostStatus:
    name: str
    #: why the host needs attention (empty: it does not)
    attention: list[str] = field(default_factory=list)
    #: what is worth knowing but not wrong
    notes: list[str] = field(default_factory=list)
    reachable: bool = True
    checked_at: str | None = None
    check_age_seconds: float | None = None
    timer: str | None = None
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)
    release: str | None = None
    deployed_at: str | None = None
    tool_version: str | None = None
    profile: str | None = None
    certificate: dict[str, Any] | None = None
    backup: dict[str, Any] | None = None
    egress_denied: list[str] = field(default_factory=list)
    egress_dropped: int | None = None
    #: what the drain flag says, when the host is out of the load balancer's pool
    drained: str | None = None


@dataclass
class StatusResult:
    profile_path: Path
    source: str
    hosts: list[HostStatus]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(h.attention for h in self.hosts)

    def as_json(self) -> dict[str, Any]:
        return {"profile": str(self.profile_path), "source": self.source, "ok": self.ok,
                "seconds": round(self.seconds, 2), "hosts": [asdict(h) for h in self.hosts]}


def _read_command(deployment: Deployment) -> str:
    layout = deployment.plan.layout
    status, timer = shlex.quote(layout.drift_status), shlex.quote(layout.drift_timer)
    flag = shlex.quote(layout.nginx_drain_flag)
    # One line of timer state, one of the drain flag (empty: none, as nginx sees it),
    # then the status file (or nothing when there is none).
    return (f"systemctl is-active {timer} || true; "
            f"if [ -f {flag} ]; then printf 'drained %s\\n' \"$(head -c 200 {flag} | "
            f"tr -d '\\n')\"; else echo; fi; cat {status} 2>/dev/null || true")


@dataclass(frozen=True)
class Answer:
    """What one host returned to :func:`_read_command`."""

    timer: str | None = None
    doc: dict[str, Any] | None = None
    error: str = ""
    #: the drain flag's text when the host is drained, else None
    drained: str | None = None


def fetch(target: SshTarget, command: str) -> Answer:
    res = run_on(target, ["sh", "-c", command], timeout=SSH_TIMEOUT)
    if isinstance(res, str):
        return Answer(error=f"over ssh: {res}")
    if res.returncode != 0:
        return Answer(error=failure(target, res))
    timer, _, rest = res.stdout.decode("utf-8", "replace").partition("\n")
    flag, _, body = rest.partition("\n")
    drained = flag[len("drained "):].strip() or "no reason given" \
        if flag.startswith("drained ") else None
    if not body.strip():
        return Answer(timer.strip(), None, "", drained)
    try:
        doc = json.loads(body)
    except ValueError:
        return Answer(timer.strip(), None, "the drift status file is not JSON", drained)
    return Answer(timer.strip(), doc if isinstance(doc, dict) else None, "", drained)


def _age(stamp: str | None, now: datetime) -> float | None:
    if not stamp:
        return None
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (now - parsed).total_seconds()


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{int(seconds)} s ago"
    if seconds < 7200:
        return f"{int(seconds // 60)} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def judge(name: str, answer: Answer, *, fingerprint: str, components: Sequence[str],
          now: datetime) -> HostStatus:
    """One host's status from what it returned (:func:`fetch`), and what needs attention."""
    timer, doc, error = answer.timer, answer.doc, answer.error
    host = HostStatus(name, timer=timer, drained=answer.drained)
    if error:
        host.reachable = False
        host.attention.append(error)
        return host
    if answer.drained is not None:
        host.attention.append(f"drained ({answer.drained}): /readyz answers 503, so the "
                              "load balancer sends the host no requests; an upgrade that "
                              "was stopped left it so: run `selfhost upgrade` or `selfhost "
                              "rollback` again")
    if timer != "active":
        host.attention.append(f"the drift timer is {timer or 'unknown'}: drift is not watched "
                              "(`selfhost deploy` enables it; drift_enabled: false turns it off)")
    if doc is None:
        host.attention.append("no drift check has run on the host yet (deploy with this "
                              "version, or wait one interval)")
        return host
    _checks(host, doc, now)
    _record(host, doc, fingerprint)
    _certificate(host, doc)
    if "backup" in components:
        _backup(host, doc, now)
    return host


def _checks(host: HostStatus, doc: dict[str, Any], now: datetime) -> None:
    host.checked_at = doc.get("checked_at")
    host.check_age_seconds = _age(host.checked_at, now)
    interval = doc.get("interval_seconds")
    if (host.check_age_seconds is not None and isinstance(interval, int)
            and host.check_age_seconds > STALE_INTERVALS * interval + STALE_GRACE_SECONDS):
        host.attention.append(f"the last drift check is {_ago(host.check_age_seconds)}, "
                              f"over {STALE_INTERVALS} intervals of {interval} s: is "
                              "backend-chat-drift.service failing? (journalctl -u it)")
    host.units = dict(doc.get("units") or {})
    checks = doc.get("checks") or []
    host.checks_passed = sum(1 for c in checks if c.get("passed"))
    host.checks_failed = [c["id"] for c in checks if not c.get("passed")]
    for finding in doc.get("findings") or []:
        host.attention.append(f"{finding['id']}: {finding['found']}")
        if finding["id"] == "egress.denied":
            host.egress_denied.append(finding["found"])
    host.egress_dropped = (doc.get("egress") or {}).get("dropped_since_deploy")


def _record(host: HostStatus, doc: dict[str, Any], fingerprint: str) -> None:
    rec = doc.get("record")
    if not rec:
        host.attention.append("no deployment record on the host")
        return
    host.deployed_at, host.tool_version = rec.get("deployed_at"), rec.get("tool_version")
    host.release = rec.get("release")
    if rec.get("profile_fingerprint") == fingerprint:
        host.profile = "in sync"
    else:
        host.profile = "profile changed since"
        host.attention.append("the profile on disk differs from the deployed one (fingerprint "
                              f"{fingerprint} here, {rec.get('profile_fingerprint')} deployed):"
                              " `selfhost deploy --check` shows the change")


def _certificate(host: HostStatus, doc: dict[str, Any]) -> None:
    cert = host.certificate = doc.get("certificate")
    if not cert:
        return
    days = cert.get("days_left")
    if not isinstance(days, (int, float)):
        host.attention.append(f"server certificate unreadable: {cert.get('error')}")
    elif days < CERT_CRITICAL_DAYS:
        host.attention.append(f"the server certificate expires in {days:.0f} days "
                              f"({cert.get('not_after')}): redeploy to renew it")
    elif days < CERT_WARN_DAYS:
        host.notes.append(f"the server certificate expires in {days:.0f} days")


def _backup(host: HostStatus, doc: dict[str, Any], now: datetime) -> None:
    backup = host.backup = doc.get("backup")
    if not backup or "error" in backup:
        host.attention.append("the backup directory cannot be read: "
                              f"{(backup or {}).get('error', 'not reported')}")
        return
    age = _age(backup.get("last"), now)
    deployed = _age(host.deployed_at, now)
    if age is None:
        if deployed is not None and deployed > BACKUP_MAX_AGE_HOURS * 3600:
            host.attention.append("no backup since the deploy "
                                  f"{_ago(deployed)} (journalctl -u backend-chat-backup)")
        else:
            host.notes.append("no backup yet (the daily timer has not run since the deploy)")
    elif age > BACKUP_MAX_AGE_HOURS * 3600:
        host.attention.append(f"the last backup is {_ago(age)}, older than "
                              f"{BACKUP_MAX_AGE_HOURS} h (journalctl -u backend-chat-backup)")


def status(profile_path: Path, *, inventory: Path | None = None,
           sandbox: str | None = None) -> StatusResult:
    """Every host's status; raising is for what stops the run (bad profile, unknown sandbox)."""
    import time  # noqa: PLC0415
    clock = time.monotonic()
    deployment = resolve(profile_path, inventory=inventory, sandbox=sandbox)
    command = _read_command(deployment)
    targets = deployment.targets
    with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        answers = list(pool.map(lambda t: fetch(t, command), targets))
    now = datetime.now(UTC)
    components = {h.name: h.components for h in deployment.plan.hosts}
    hosts = [judge(t.name, answer, fingerprint=deployment.plan.profile_fingerprint,
                   components=components[t.name], now=now)
             for t, answer in zip(targets, answers, strict=True)]
    return StatusResult(profile_path, deployment.source, hosts, time.monotonic() - clock)
