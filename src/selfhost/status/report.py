"""The status screen: one block per host, then what needs attention. Pure."""

from __future__ import annotations

from selfhost.status.service import HostStatus, StatusResult


def _certificate(host: HostStatus) -> str:
    cert = host.certificate
    if not cert:
        return "none on this host"
    days = cert.get("days_left")
    left = f", {days:.0f} days left" if isinstance(days, (int, float)) else ""
    return f"expires {cert.get('not_after')}{left}"


def _backup(host: HostStatus) -> str | None:
    if host.backup is None:
        return None
    if host.backup.get("last"):
        return (f"{host.backup['last']} ({host.backup.get('file')}, "
                f"{host.backup.get('archives')} archive(s))")
    return "none yet"


def _egress(host: HostStatus) -> str:
    denied = len(host.egress_denied)
    dropped = host.egress_dropped
    return (f"{denied} destination(s) refused by the proxy, "
            f"{'?' if dropped is None else dropped} packet(s) dropped by nftables")


def _host_block(host: HostStatus) -> list[str]:
    head = f"{host.name}: {'needs attention' if host.attention else 'ok'}"
    if not host.reachable:
        return [head]
    rows = [
        ("drift check", f"{host.checked_at or 'never'} (timer {host.timer}), "
                        f"{host.checks_passed} passed, {len(host.checks_failed)} failed"),
        ("units", ", ".join(f"{u} {s}" for u, s in sorted(host.units.items())) or "-"),
        ("release", host.release or "the contract probe app (no release recorded)"),
        ("last deploy", f"{host.deployed_at} by selfhost {host.tool_version}, "
                        f"{host.profile}" if host.deployed_at else "none recorded"),
        ("certificate", _certificate(host)),
        ("last backup", _backup(host)),
        ("egress", _egress(host)),
        ("pool", f"drained ({host.drained}), /readyz answers 503" if host.drained else None),
    ]
    return [head, *(f"  {k + ':':<13} {v}" for k, v in rows if v is not None)]


def render(result: StatusResult) -> str:
    lines = [f"{result.profile_path} on {result.source}:"]
    for host in result.hosts:
        lines += _host_block(host)
    problems = [(h.name, a) for h in result.hosts for a in h.attention]
    notes = [(h.name, n) for h in result.hosts for n in h.notes]
    lines += [f"note: {n}: {t}" for n, t in notes]
    if problems:
        lines.append(f"needs attention ({len(problems)}):")
        lines += [f"  {n}: {t}" for n, t in problems]
    else:
        lines.append(f"all {len(result.hosts)} host(s) ok ({result.seconds:.1f} s)")
    return "\n".join(lines)
