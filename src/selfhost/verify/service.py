"""``verify()``: the one function behind ``selfhost verify``."""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from selfhost.errors import InvalidInput
from selfhost.targets import Deployment, resolve
from selfhost.verify import components, egress_log
from selfhost.verify.components import egress
from selfhost.verify.contract import Facts
from selfhost.verify.report import CheckResult, VerifyResult, write_json

if TYPE_CHECKING:
    from selfhost.verify.testinfra_suite import ResultCallback


def _writable(path: Path | None, option: str) -> None:
    if path is not None and not path.parent.is_dir():
        raise InvalidInput(f"{option} {path}: the directory {path.parent} does not exist "
                           "(create it or choose another path)")


def observed_egress(facts: dict[str, Facts]) -> dict[str, dict[str, egress_log.Destination]]:
    out = {}
    for host, found in facts.items():
        if (seen := egress.observed(found)) is not None:
            out[host] = seen
    return out


def run(deployment: Deployment, *, junit: Path | None = None,
        on_result: ResultCallback | None = None) -> tuple[VerifyResult, dict[str, Facts]]:
    """Check ``deployment``; also returns the facts collected (reconciliation reads them)."""
    # Here, not at the top: pytest and testinfra take most of a second to import,
    # which every other selfhost command would pay for.
    from selfhost.verify.testinfra_suite import run_suite  # noqa: PLC0415
    plan = deployment.plan
    checks = components.generate(plan, deployment.direct_targets)
    specs = {h.name: components.host_spec(plan, h, deployment.direct_targets.get(h.name))
             for h in plan.hosts}
    targets = {t.name: t for t in deployment.targets}
    started = datetime.now(UTC).isoformat(timespec="seconds")
    clock = time.monotonic()
    junit_tmp = None
    if junit is not None:
        fd, name = tempfile.mkstemp(dir=junit.parent, prefix=f".{junit.name}.", suffix=".tmp")
        os.close(fd)
        junit_tmp = Path(name)
    try:
        outcomes, facts = run_suite(checks, targets, specs, junit_tmp, on_result)
        if junit is not None and junit_tmp is not None:
            junit_tmp.chmod(0o644)
            os.replace(junit_tmp, junit)
    finally:
        if junit_tmp is not None:
            junit_tmp.unlink(missing_ok=True)
    not_generated = [
        f"{h.name}: direct outbound from the app user was not tested: the deployment has "
        "no other host to aim at, and verify never connects to an address outside it"
        for h in plan.hosts_with("app") if h.name not in deployment.direct_targets]
    result = VerifyResult(
        profile_path=deployment.profile_path, source=deployment.source,
        profile_fingerprint=plan.profile_fingerprint, hosts=[h.name for h in plan.hosts],
        started_at=started, seconds=time.monotonic() - clock,
        results=[CheckResult(c, outcomes[c.key].passed, outcomes[c.key].found,
                             outcomes[c.key].warning) for c in checks],
        observed=observed_egress(facts), not_generated=not_generated)
    return result, facts


def verify(profile_path: Path, *, inventory: Path | None = None, sandbox: str | None = None,
           junit: Path | None = None, json_path: Path | None = None,
           on_result: ResultCallback | None = None) -> VerifyResult:
    """Check the live hosts of ``profile_path``'s deployment against its Plan.

    The result says which checks failed; raising is for what stops the run
    itself (bad profile, unknown sandbox, unwritable report path).
    """
    _writable(junit, "--junit")
    _writable(json_path, "--json")
    deployment = resolve(profile_path, inventory=inventory, sandbox=sandbox)
    result, _ = run(deployment, junit=junit, on_result=on_result)
    if json_path is not None:
        write_json(result, json_path)
    return result
