"""One drift check on one host: collect, judge, write the status file, log each failure.

This module runs on the deployment's hosts, started by the drift role's systemd
timer, without the controller. Hosts have Debian's Python and no pydantic, so it
imports only the standard library and verify's collector and component checks
(their Plan-side halves are never called here): the facts are gathered by the
same collector ``selfhost verify`` runs over ssh, and each check is judged by the
same evaluation. What the host is checked against (its checks with the Plan's
values, and the collection spec) was written by ``selfhost deploy`` into the
drift config.

Every failing check becomes one journal line (the unit's stdout) that starts
with :data:`PREFIX`, so a customer's log shipping can match it::

    backend-chat-drift: FAIL app.unit host=chat1: backend-chat.service inactive/dead
"""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from selfhost.verify.components import DEFS, egress, record, remote_command
from selfhost.verify.components.host import nftables
from selfhost.verify.contract import AnyCheck, Check, Facts, SectionError

#: the start of every journal line the drift watch writes (documented, stable)
PREFIX = "backend-chat-drift:"
#: the status file's format
SCHEMA = 1
#: the collector has its own short timeouts; this bounds a stuck collection
COLLECT_TIMEOUT = 120
#: the only classes a check's parameters may be made of (besides builtin containers)
_PARAM_MODULE = "selfhost.verify.components."
_BUILTINS = frozenset({"tuple", "list", "dict", "set", "frozenset"})


class _ParamsUnpickler(pickle.Unpickler):
    """Check parameters are the components' own dataclasses; nothing else is loaded."""

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith(_PARAM_MODULE) or (module == "builtins" and name in _BUILTINS):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not a check parameter type")


def encode_params(params: object) -> str:
    """A check's parameters as the drift config holds them (the controller's side)."""
    return base64.b64encode(pickle.dumps(params, protocol=4)).decode()


def decode_params(text: str) -> object:
    return _ParamsUnpickler(io.BytesIO(base64.b64decode(text))).load()


def load_checks(config: dict[str, Any]) -> list[AnyCheck]:
    by_id = {d.id: d for d in DEFS}
    return [Check(by_id[c["def"]], config["host"], c["description"], c["expected"], c["fix"],
                  decode_params(c["params"]), c.get("suffix", ""))
            for c in config["checks"]]


def collect(spec: dict[str, object]) -> Facts:
    """The facts of ``spec``, by the collector verify runs (in a child, as over ssh)."""
    try:
        res = subprocess.run(["sh", "-c", remote_command(spec)], capture_output=True,
                             text=True, timeout=COLLECT_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return Facts({"unreachable": f"collecting facts took over {COLLECT_TIMEOUT} s"})
    if res.returncode != 0:
        return Facts({"unreachable": f"collecting facts failed (exit {res.returncode}): "
                                     f"{res.stderr.strip()[-300:]}"})
    return Facts(json.loads(res.stdout))


@dataclass
class Finding:
    """Something that needs attention: a failed check, or a contact attempt refused."""

    id: str
    found: str
    fix: str


def _denials(facts: Facts, config: dict[str, Any]) -> list[Finding]:
    """Requests the proxy refused since the last deploy, but the checks' own probes."""
    try:
        seen = egress.observed(facts)
    except SectionError:  # no record: a failing check says so already
        return []
    if seen is None:
        return []
    probes = set(config.get("probes", []))
    refused = {d: v for d, v in seen.items() if v.refused and d not in probes}
    return [Finding("egress.denied", f"{dest}: {v.describe()}",
                    "a process on the host tried a destination off the subprocessor "
                    "list; the proxy log has the time and the client")
            for dest, v in sorted(refused.items())]


def _drop_counter(facts: Facts) -> int | None:
    """Packets of new outbound connections nftables dropped (its counted drop rules)."""
    try:
        rules = nftables(facts)
    except SectionError:
        return None
    inputs = {f"{c['family']} {c['table']}/{c['name']}" for c in rules.get("chains", [])
              if c.get("hook") == "input"}
    total = 0
    for chain, exprs in rules.get("chain_rules", {}).items():
        if chain in inputs:
            continue
        for expr in exprs:
            for part in expr:
                if isinstance(part, dict) and isinstance(part.get("counter"), dict):
                    total += int(part["counter"].get("packets", 0))
    return total


def _certificate(facts: Facts, path: str | None) -> dict[str, Any] | None:
    tls = facts.raw.get("tls")
    verified = tls.get("verified") if isinstance(tls, dict) else None
    if isinstance(verified, dict) and verified.get("not_after"):
        return {"not_after": verified["not_after"], "days_left": verified.get("days_left"),
                "source": "served on 443"}
    if not path or not os.path.exists(path):
        return None
    res = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", path],
                         capture_output=True, text=True, check=False, timeout=10)
    if res.returncode != 0 or "=" not in res.stdout:
        return {"error": res.stderr.strip() or "unreadable", "source": path}
    import ssl  # noqa: PLC0415 - only for its certificate date parser
    not_after = res.stdout.strip().partition("=")[2]
    return {"not_after": not_after, "source": path,
            "days_left": (ssl.cert_time_to_seconds(not_after) - time.time()) / 86400}


def _backup(directory: str | None) -> dict[str, Any] | None:
    if not directory:
        return None
    try:
        entries = [e for e in os.scandir(directory) if e.is_file()]
    except OSError as exc:
        return {"error": str(exc)}
    if not entries:
        return {"last": None, "archives": 0}
    newest = max(entries, key=lambda e: e.stat().st_mtime)
    return {"last": iso(newest.stat().st_mtime), "file": newest.name, "archives": len(entries)}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _record(facts: Facts) -> dict[str, Any] | None:
    try:
        data = record.data(facts)
    except SectionError:
        return None
    if data is None:
        return None
    release = data.get("release")
    return {"deployed_at": data.get("deployed_at") or data.get("time"),
            "tool_version": data.get("tool_version"),
            "profile_fingerprint": data.get("profile_fingerprint"),
            # "name version", as status shows it (None: the contract probe app)
            "release": (f"{release.get('name')} {release.get('version')}"
                        if isinstance(release, dict) else release)}


def _baseline(previous: dict[str, Any] | None, deployed_at: str | None, drops: int | None
              ) -> int | None:
    """The drop counter at the first check after the last deploy (counted from there)."""
    if drops is None:
        return None
    if previous and previous.get("record", {}).get("deployed_at") == deployed_at:
        base = previous.get("egress", {}).get("drops_baseline")
        if isinstance(base, int) and base <= drops:
            return base
    return drops


def judge(config: dict[str, Any], facts: Facts, previous: dict[str, Any] | None
          ) -> dict[str, Any]:
    """The status document of one run (what the status file holds)."""
    checks = load_checks(config)
    results = []
    findings: list[Finding] = []
    for check in checks:
        outcome = (check.evaluate(facts) if facts.unreachable is None else None)
        passed = outcome.passed if outcome else False
        found = outcome.found if outcome else f"host not checked: {facts.unreachable}"
        results.append({"id": check.id, "component": check.component, "passed": passed,
                        "found": found})
        if not passed:
            findings.append(Finding(check.id, found, check.fix))
    findings += _denials(facts, config)
    rec = _record(facts)
    deployed_at = rec.get("deployed_at") if rec else None
    drops = _drop_counter(facts)
    base = _baseline(previous, deployed_at, drops)
    dropped = (drops - base) if drops is not None and base is not None else None
    if dropped:
        findings.append(Finding("egress.dropped", f"nftables dropped {dropped} outbound "
                                f"packet(s) since the last deploy",
                                "a process tried to connect out past the firewall; its log "
                                "lines start with `backend-chat egress drop:` (kernel log)"))
    raw_units = facts.raw.get("units")
    units = {u: f"{p.get('ActiveState', 'unknown')}/{p.get('SubState', 'unknown')}"
             for u, p in (raw_units if isinstance(raw_units, dict) else {}).items()
             if isinstance(p, dict)}
    return {
        "schema": SCHEMA, "host": config["host"], "checked_at": iso(time.time()),
        "interval_seconds": config.get("interval_seconds"), "units": units,
        "checks": results, "findings": [asdict(f) for f in findings], "record": rec,
        "certificate": _certificate(facts, config.get("certificate")),
        "backup": _backup(config.get("backup_dir")),
        "egress": {"drops": drops, "drops_baseline": base, "dropped_since_deploy": dropped},
    }


def journal_lines(status: dict[str, Any]) -> list[str]:
    host = status["host"]
    lines = [f"{PREFIX} FAIL {f['id']} host={host}: {_one_line(f['found'])}"
             for f in status["findings"]]
    if not lines:
        lines.append(f"{PREFIX} ok host={host}: {len(status['checks'])} checks passed")
    return lines


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def write_status(path: str, status: dict[str, Any]) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o750, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".drift-status.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(status, out, indent=1, sort_keys=True)
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _previous(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            found = json.load(handle)
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def run(config_path: str, status_path: str) -> int:
    with open(config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    status = judge(config, collect(config["spec"]), _previous(status_path))
    write_status(status_path, status)
    for line in journal_lines(status):
        print(line, flush=True)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"{PREFIX} usage: python3 -m selfhost.drift.host CONFIG STATUS", file=sys.stderr)
        return 2
    return run(argv[0], argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
