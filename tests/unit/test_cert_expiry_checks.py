"""``nginx.certificate`` in provided mode on recorded facts: a warning a month ahead, a
failure in the last week, both naming the file to replace; internal certificates keep
failing a month ahead (deploy renews those)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from selfhost.plan import Plan, plan
from selfhost.profile_io import load_profile
from selfhost.verify.components import generate
from selfhost.verify.contract import AnyCheck, Facts, Outcome
from selfhost.verify.report import CheckResult, VerifyResult, summary, to_json

DATA = Path(__file__).parent / "data" / "verify"
RECORDED = json.loads((DATA / "us-openai-chat1.facts.json").read_text())


def _plan(mode: str) -> Plan:
    profile = load_profile(DATA / "us-openai.yaml")
    tls = profile.tls.model_copy(update={"mode": mode, "cert_file": "chain.pem",
                                         "key_file": "key.pem"})
    return plan(profile.model_copy(update={"tls": tls}))


def _check(mode: str) -> AnyCheck:
    return next(c for c in generate(_plan(mode)) if c.id == "nginx.certificate")


def _outcome(mode: str, days: float) -> Outcome:
    raw = copy.deepcopy(RECORDED)
    raw["tls"]["verified"]["days_left"] = days
    return _check(mode).evaluate(Facts(raw))


@pytest.mark.parametrize(("days", "passed", "warning"), [
    (60.0, True, False), (29.0, True, True), (7.5, True, True), (6.5, False, False),
    (-1.0, False, False)])
def test_provided_levels(days: float, passed: bool, warning: bool) -> None:
    outcome = _outcome("provided", days)
    assert (outcome.passed, outcome.warning) == (passed, warning), outcome.found


def test_a_warning_and_a_failure_name_the_file_to_replace() -> None:
    assert "replace /etc/nginx/tls/server.crt" in _outcome("provided", 20.0).found
    assert "replace /etc/nginx/tls/server.crt" in _outcome("provided", 3.0).found
    assert "tls.cert_file" in _check("provided").fix


def test_internal_certificates_still_fail_a_month_ahead() -> None:
    outcome = _outcome("self-signed", 20.0)
    assert (outcome.passed, outcome.warning) == (False, False)


def test_a_warning_shows_in_the_summary_and_the_json_report() -> None:
    check = _check("provided")
    outcome = _outcome("provided", 20.0)
    result = VerifyResult(profile_path=Path("p.yaml"), source="sandbox x", hosts=["chat1"],
                          profile_fingerprint="f", started_at="t", seconds=1.0,
                          results=[CheckResult(check, outcome.passed, outcome.found,
                                               outcome.warning)])
    assert result.ok
    text = summary(result)
    assert "  WARN chat1: the provided certificate is valid for the domain" in text
    assert "1 passed, 0 failed, 1 with a warning" in text
    report = to_json(result)
    assert (report["warnings"], report["checks"][0]["result"]) == (1, "warn")
