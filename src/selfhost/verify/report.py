"""What a verify run found: the result object, the summary by component, the JSON report."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfhost.atomic import write_atomic
from selfhost.verify.contract import COMPONENTS, AnyCheck
from selfhost.verify.egress_log import Destination, iso_time

REPORT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class CheckResult:
    check: AnyCheck
    passed: bool
    found: str
    #: passed, with something to act on soon (shown as WARN)
    warning: bool = False


@dataclass
class VerifyResult:
    profile_path: Path
    source: str
    profile_fingerprint: str
    hosts: list[str]
    started_at: str
    seconds: float
    results: list[CheckResult]
    #: per app host: every destination in the proxy's log since the last deploy
    observed: dict[str, dict[str, Destination]] = field(default_factory=dict)
    #: checks the Plan implies but this run could not generate, with the reason
    not_generated: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    @property
    def warnings(self) -> list[CheckResult]:
        return [r for r in self.results if r.passed and r.warning]


def summary(result: VerifyResult) -> str:
    """A readable report: one block per component, each failure with expected/found/fix."""
    lines = [f"verify {result.profile_path} on {result.source} "
             f"({', '.join(result.hosts)}) in {result.seconds:.1f} s"]
    for component in COMPONENTS:
        rows = [r for r in result.results if r.check.component == component]
        if not rows:
            continue
        passed = sum(r.passed for r in rows)
        lines.append("")
        lines.append(f"{component}: {passed}/{len(rows)} passed")
        for r in rows:
            mark = "FAIL" if not r.passed else "WARN" if r.warning else "ok  "
            lines.append(f"  {mark} {r.check.host}: {r.check.description}")
            if r.warning and r.passed:
                lines.append(f"         found:    {r.found}")
                lines.append(f"         fix:      {r.check.fix}")
            if not r.passed:
                lines.append(f"         expected: {r.check.expected}")
                lines.append(f"         found:    {r.found}")
                lines.append(f"         fix:      {r.check.fix}")
    if result.observed:
        lines.append("")
        lines.append("egress observed since the last deploy:")
        for host, seen in sorted(result.observed.items()):
            shown = ", ".join(f"{d} ({v.describe()})" for d, v in sorted(seen.items()))
            lines.append(f"  {host}: {shown or 'nothing'}")
    for note in result.not_generated:
        lines.append(f"note: {note}")
    failed = len(result.failures)
    lines.append("")
    warned = len(result.warnings)
    lines.append(f"{len(result.results) - failed} passed, {failed} failed"
                 + (f", {warned} with a warning" if warned else "")
                 + ("" if failed else ": the hosts match the Plan"))
    return "\n".join(lines)


def to_json(result: VerifyResult) -> dict[str, Any]:
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "profile": str(result.profile_path),
        "source": result.source,
        "profile_fingerprint": result.profile_fingerprint,
        "hosts": result.hosts,
        "started_at": result.started_at,
        "seconds": round(result.seconds, 3),
        "ok": result.ok,
        "passed": sum(r.passed for r in result.results),
        "failed": len(result.failures),
        "warnings": len(result.warnings),
        "checks": [{"id": r.check.id, "component": r.check.component, "host": r.check.host,
                    "description": r.check.description, "expected": r.check.expected,
                    "found": r.found, "result": _result(r),
                    "fix": r.check.fix} for r in result.results],
        "observed_egress": {
            host: {d: {"requests": v.requests, "contacted": v.contacted, "refused": v.refused,
                       "statuses": sorted(v.statuses), "first": iso_time(v.first),
                       "last": iso_time(v.last), "summary": v.describe()}
                   for d, v in sorted(seen.items())}
            for host, seen in sorted(result.observed.items())},
        "not_generated": result.not_generated,
    }


def _result(r: CheckResult) -> str:
    return "fail" if not r.passed else "warn" if r.warning else "pass"


def write_json(result: VerifyResult, path: Path) -> None:
    text = json.dumps(to_json(result), indent=2, sort_keys=True) + "\n"
    write_atomic(path, text.encode())
