"""The deployment record beside the profile, and the subprocessor delta."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from selfhost.deploy import record
from selfhost.deploy.delta import compare
from selfhost.errors import InvalidInput
from selfhost.paths import preset_path
from selfhost.plan import Plan, plan
from selfhost.profile_io import load_profile
from selfhost.subprocessors.document import build_document

ON = date(2026, 1, 15)


def _plan(name: str) -> Plan:
    return plan(load_profile(preset_path(name)))


def test_state_dir_is_beside_the_profile(tmp_path: Path) -> None:
    assert record.record_path(tmp_path / "acme.yaml", "acme") == (
        tmp_path / ".selfhost" / "acme" / "deployment.json")


def test_record_round_trips(tmp_path: Path) -> None:
    rec = record.from_plan(_plan("us-openai"), "1.2.3", datetime(2026, 1, 1, tzinfo=UTC))
    path = tmp_path / "deployment.json"
    record.write(path, rec)
    assert record.read(path) == rec


def test_record_holds_fingerprint_components_allowlist_and_parties() -> None:
    p = _plan("us-openai")
    rec = record.from_plan(p, "1.2.3")
    assert (rec.profile_fingerprint, rec.hosts[0].components, rec.egress_allowlist,
            rec.third_party_ids()) == (p.profile_fingerprint, list(p.hosts[0].components),
                                       p.egress_allowlist, ["openai", "sendgrid", "sentry"])


def test_missing_record_means_first_deployment(tmp_path: Path) -> None:
    assert record.read(tmp_path / "deployment.json") is None


def test_damaged_record_says_how_to_recover(tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    path.write_text("{not json")
    with pytest.raises(InvalidInput, match="move it away"):
        record.read(path)


def test_list_round_trips(tmp_path: Path) -> None:
    doc = build_document(_plan("us-openai"), on=ON)
    path = tmp_path / "subprocessors.json"
    record.write_list(path, doc)
    assert record.read_list(path) == doc


def test_first_deployment_does_not_change_a_list() -> None:
    assert compare(None, _plan("us-openai"), ON).changes_list is False


def test_same_plan_has_no_delta() -> None:
    p = _plan("us-openai")
    delta = compare(build_document(p, on=ON), p, ON)
    assert delta.lines() == ["subprocessors: unchanged since the last deployment"]


def test_switching_ai_provider_adds_and_removes() -> None:
    delta = compare(build_document(_plan("us-openai"), on=ON), _plan("eu-anthropic"), ON)
    ids = ([s.id for s in delta.notice.added], [s.id for s in delta.notice.removed])  # type: ignore[union-attr]
    assert ids == (["anthropic"], ["openai", "sendgrid", "sentry"])


def test_delta_lines_mark_added_and_removed() -> None:
    delta = compare(build_document(_plan("air-gapped"), on=ON), _plan("us-openai"), ON)
    assert [line[:2] for line in delta.lines()] == ["+ ", "+ ", "+ "]


def _left_behind(before: str | None, after: str) -> list[str]:
    previous = record.from_plan(_plan(before), "1.2.3") if before else None
    return record.left_behind(previous, _plan(after))


def test_nothing_left_behind_by_the_first_deployment() -> None:
    assert _left_behind(None, "air-gapped") == []


def test_nothing_left_behind_by_the_same_plan() -> None:
    assert _left_behind("split", "split") == []


def test_local_services_dropped_for_external_ones_are_named() -> None:
    assert [line.split(" is ")[0] for line in _left_behind("air-gapped", "external-db")] == [
        "chat1: postgresql", "chat1: backup", "chat1: redis"]


def test_hosts_dropped_from_the_profile_are_named_with_what_they_run() -> None:
    assert _left_behind("split", "air-gapped")[-1] == (
        "cache1 (192.0.2.31) is no longer in the profile; it was left as it was, still "
        "running common, tls, redis")


def test_components_gained_are_not_left_behind() -> None:
    assert _left_behind("external-db", "air-gapped") == []
