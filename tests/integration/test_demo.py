"""`selfhost demo` end to end, as the README's walk-through runs it: a sandbox guest,
the preset's profile, its deployment, its verification and its subprocessor lists.
A second run reuses all of it and changes nothing on the host."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from selfhost import sandbox
from selfhost.paths import DEFAULT_PRESET
from selfhost.workflows.demo import run_demo, sandbox_name

SELFHOST = str(Path(sys.executable).with_name("selfhost"))
RELEASE = "bookworm"


@pytest.mark.slow
def test_demo_deploys_verifies_and_lists_then_changes_nothing(sandbox_env: Path,
                                                              tmp_path: Path) -> None:
    work = tmp_path / "demo"
    try:
        run = subprocess.run([SELFHOST, "demo", "--workdir", str(work), "--release", RELEASE],
                             capture_output=True, text=True, timeout=1800, check=False)
        output = run.stdout + run.stderr
        assert run.returncode == 0, output
        checks = re.search(r"Verification: +(\d+)/(\d+) checks passed", output)
        assert checks is not None, output
        passed, total = int(checks.group(1)), int(checks.group(2))
        assert (passed, total >= 30) == (total, True), output

        passphrase_file = work / "passphrase"
        passphrase = passphrase_file.read_text().strip()
        assert len(passphrase) >= 32
        assert passphrase not in output
        profile = work / f"{DEFAULT_PRESET}.yaml"
        for secret_file in (passphrase_file, profile.with_suffix(".secrets")):
            assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600, secret_file

        # The air-gapped preset sends personal data to no third party: each list says so.
        listed = json.loads((work / "subprocessors.json").read_text())
        assert (listed["customer"]["id"], listed["subprocessors"]) == ("example-air-gapped", [])
        assert "<html" in (work / "subprocessors.html").read_text().lower()
        assert (work / "subprocessors.md").read_text().startswith("#")
        report = json.loads((work / "verify.json").read_text())
        assert report["ok"] is True

        again = run_demo(DEFAULT_PRESET, RELEASE, work)
        changed = {host.name: again.deployment.stats[host.name].changed
                   for host in again.deployment.plan.hosts}
        assert changed == {"chat1": 0}
        assert again.verification.ok, again.verification.failures
        assert again.passphrase_file.read_text().strip() == passphrase
    finally:
        sandbox.down(sandbox_name(RELEASE))
