"""One host's answer -> the bundle's parts for that host, unredacted (still in memory).

Pure: the answer comes from :mod:`selfhost.bundle.collect`; redaction follows in
:mod:`selfhost.bundle.service`, over every part alike.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from selfhost.plan import Plan
from selfhost.verify import egress_log


@dataclass
class Gathered:
    """Parts by archive name (text, not yet redacted), what was left out and why,
    and what could not be read."""

    parts: dict[str, str] = field(default_factory=dict)
    omitted: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _command(out: Gathered, name: str, result: Any, what: str, host: str) -> None:
    if not isinstance(result, dict):
        return
    if result.get("rc") != 0:
        out.problems.append(f"{host}: {what} failed (exit {result.get('rc')}): "
                            f"{str(result.get('err', '')).strip()[-300:]}")
    if result.get("out") or result.get("rc") == 0:
        out.parts[name] = str(result.get("out", ""))


def verdicts(plan: Plan, lines: list[str], since_iso: str) -> dict[str, Any]:
    """The proxy's verdicts since ``since_iso``: totals by status and by destination,
    each destination marked on or off the Plan's allowlist."""
    allow = [str(e) for e in plan.egress_allowlist]
    by_status: Counter[str] = Counter(f.split()[3] for f in lines if len(f.split()) > 3)
    found = egress_log.destinations(lines, since_iso)
    return {
        "since": since_iso,
        "requests": sum(d.requests for d in found.values()),
        "by_status": dict(sorted(by_status.items())),
        "destinations": {
            name: {"listed": egress_log.on_list(name, allow), "requests": d.requests,
                   "contacted": d.contacted, "refused": d.refused,
                   "statuses": sorted(d.statuses), "first": egress_log.iso_time(d.first),
                   "last": egress_log.iso_time(d.last)}
            for name, d in sorted(found.items())},
    }


def _versions(data: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
    manifests = {}
    for path, got in files.items():
        if path.endswith(".json") and "/releases/" in path and "text" in got:
            try:
                manifest = json.loads(got["text"])
            except ValueError:
                continue
            if isinstance(manifest, dict):
                manifests[path] = {k: manifest.get(k) for k in ("name", "version")}
    os_lines = str((data.get("os_release") or {}).get("text", "")).splitlines()
    os_info = dict(line.split("=", 1) for line in os_lines if "=" in line)
    return {"os": os_info.get("PRETTY_NAME", "").strip('"'),
            "release_current": data.get("current_release"), "release_manifests": manifests}


def host_parts(plan: Plan, host: str, data: dict[str, Any], since_iso: str) -> Gathered:
    """The archive parts of one host's answer, under ``hosts/<host>/``."""
    out = Gathered()
    base = f"hosts/{host}"
    _command(out, f"{base}/journal/units.log", data.get("journal_units"),
             "reading the journal of the deployment's units", host)
    _command(out, f"{base}/journal/tagged.log", data.get("journal_tags"),
             "reading the journal of the deployment's programs", host)
    _command(out, f"{base}/systemd-units.txt", data.get("unit_states"),
             "listing the units", host)
    _command(out, f"{base}/packages.tsv", data.get("packages"), "dpkg-query", host)
    _command(out, f"{base}/nft-ruleset.txt", data.get("nft"), "nft list ruleset", host)
    files: dict[str, Any] = data.get("files") or {}
    for path, got in sorted(files.items()):
        name = f"{base}/files{path}"
        if "text" in got:
            out.parts[name] = str(got["text"])
        else:
            out.omitted[name] = str(got.get("omitted") or got.get("error") or "unreadable")
    out.parts[f"{base}/versions.json"] = _dump(_versions(data, files))
    if (lines := data.get("proxy_lines")) is not None:
        out.parts[f"{base}/proxy-verdicts.json"] = _dump(verdicts(plan, list(lines), since_iso))
    return out


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"
