"""The list's evidence from the live hosts names the release each app host runs, as its
deployment record says, in every format the list is rendered in."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from selfhost.plan import Plan, plan
from selfhost.profile_io import load_profile
from selfhost.subprocessors.document import Evidence, build_document
from selfhost.subprocessors.render import render
from selfhost.verify.contract import Facts
from selfhost.verify.reconcile import evidence_from

DATA = Path(__file__).parent / "data" / "verify"
RECORDED: dict[str, Any] = json.loads((DATA / "us-openai-chat1.facts.json").read_text())
ON = date(2026, 12, 1)


def _plan() -> Plan:
    return plan(load_profile(DATA / "us-openai.yaml"))


def _evidence(release: dict[str, str] | None) -> Evidence:
    raw = copy.deepcopy(RECORDED)
    raw["record"]["data"].pop("release", None)
    if release is not None:
        raw["record"]["data"]["release"] = release
    return evidence_from(_plan(), {"chat1": Facts(raw)})


def _release_rows(evidence: Evidence) -> list[tuple[str, str]]:
    return [(c.host, c.detail) for c in evidence.checks if c.check == "running release"]


def test_evidence_names_the_release_the_host_record_names() -> None:
    evidence = _evidence({"name": "backend-chat", "version": "2.0"})
    assert _release_rows(evidence) == [("chat1", "backend-chat 2.0")]


def test_evidence_of_the_contract_probe_app_says_no_release() -> None:
    assert _release_rows(_evidence(None)) == [
        ("chat1", "the contract probe app (no release recorded)")]


@pytest.mark.parametrize("fmt", ["md", "html", "json"])
def test_every_format_of_the_list_shows_the_running_release(fmt: str) -> None:
    doc = build_document(_plan(), on=ON,
                         evidence=_evidence({"name": "backend-chat", "version": "2.0"}))
    text = render(doc, fmt)  # type: ignore[arg-type]
    assert "running release" in text
    assert "backend-chat 2.0" in text
    assert "backend-chat 1.0" not in text
