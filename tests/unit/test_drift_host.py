"""The drift watch's host side: it imports without pydantic (hosts have Debian's Python
only), loads only check parameters from its config, and writes one journal line per
finding with the documented prefix; its status file names the release that runs."""

from __future__ import annotations

import base64
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from selfhost.drift import bundle, host
from selfhost.paths import preset_path
from selfhost.plan import plan
from selfhost.profile_io import load_profile
from selfhost.verify.contract import Facts


@pytest.fixture(scope="module")
def config() -> dict[str, object]:
    return bundle.host_config(plan(load_profile(preset_path("air-gapped"))), "chat1")


def test_shipped_code_imports_with_the_standard_library_alone(tmp_path: Path) -> None:
    for rel, source in bundle.code().items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    # -S: no site-packages, so neither pydantic nor this checkout's selfhost is found
    res = subprocess.run([sys.executable, "-S", "-c",
                          "import selfhost.drift.host as h, sys; print(h.__file__); "
                          "print('pydantic' in sys.modules)"],
                         env={"PYTHONPATH": str(tmp_path)}, capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [str(tmp_path / "selfhost/drift/host.py"), "False"]


def test_checks_round_trip_through_the_config(config: dict[str, object]) -> None:
    checks = host.load_checks(config)
    ids = [c.id for c in checks]
    assert "app.unit" in ids
    assert "egress.allowlist" in ids
    assert "postgresql.listen" in ids


def test_params_refuse_anything_but_check_parameters() -> None:
    evil = base64.b64encode(pickle.dumps(subprocess.Popen)).decode()
    with pytest.raises(pickle.UnpicklingError, match="not a check parameter type"):
        host.decode_params(evil)


def test_failing_checks_and_denials_are_journal_lines(config: dict[str, object]) -> None:
    facts = Facts({"record": {"exists": False}, "egress": {"log": {"lines": [
        "1764230000.123 45 127.0.0.1 TCP_DENIED/403 3900 CONNECT other.invalid:443 - "
        "HIER_NONE/- text/html",
        "1764230001.000 45 127.0.0.1 TCP_DENIED/403 3900 CONNECT "
        "unlisted.selfhost-verify.invalid:443 - HIER_NONE/- text/html"]}}})
    status = host.judge(dict(config), facts, None)
    lines = host.journal_lines(status)
    assert len(lines) == len(status["findings"])
    assert all(line.startswith("backend-chat-drift: FAIL ") for line in lines)
    denied = [f for f in status["findings"] if f["id"] == "egress.denied"]
    # the checks' own probe of an unlisted name is no denial; a process's attempt is
    assert [f["found"].split(":")[0] for f in denied] == ["other.invalid"]


def test_a_clean_run_logs_one_ok_line() -> None:
    status = {"host": "chat1", "findings": [], "checks": [{}, {}]}
    assert host.journal_lines(status) == ["backend-chat-drift: ok host=chat1: 2 checks passed"]


@pytest.mark.parametrize(("recorded", "shown"), [
    ({"name": "backend-chat", "version": "2.0"}, "backend-chat 2.0"), (None, None)])
def test_the_status_file_names_the_release_the_record_names(
        recorded: dict[str, str] | None, shown: str | None) -> None:
    data = {"deployed_at": "2026-12-01T10:00:00Z", "tool_version": "0.1.0",
            "profile_fingerprint": "sha256:ab", **({"release": recorded} if recorded else {})}
    found = host._record(Facts({"record": {"exists": True, "data": data}}))
    assert found is not None
    assert found["release"] == shown
