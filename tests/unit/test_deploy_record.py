"""The deployment record beside the profile, and the subprocessor delta."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jinja2
import pytest
from ansible.plugins.filter.core import FilterModule
from ruamel.yaml import YAML

from selfhost.deploy import record
from selfhost.deploy.delta import compare
from selfhost.errors import InvalidInput
from selfhost.paths import ANSIBLE_DIR, preset_path
from selfhost.plan import Plan, plan
from selfhost.profile_io import load_profile
from selfhost.record_schema import UNDIGESTED, DeploymentRecord, RecordRelease, content_digest
from selfhost.subprocessors.document import build_document

ON = date(2026, 1, 15)
RECORD_ROLE = ANSIBLE_DIR / "roles" / "record"


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
                                       [".ingest.us.sentry.io:443", "api.openai.com:443",
                                        "smtp.sendgrid.net:587"],
                                       ["openai", "sendgrid", "sentry"])


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


# -- one schema for the controller's copy and the hosts' ----------------------------

def test_controller_record_on_disk_validates_against_the_shared_schema(tmp_path: Path) -> None:
    p = _plan("split")
    path = tmp_path / "deployment.json"
    record.write(path, record.from_plan(p, "1.2.3", datetime(2026, 1, 1, tzinfo=UTC)))
    on_disk = DeploymentRecord.model_validate(json.loads(path.read_text()))
    assert (on_disk.host, on_disk.components, [h.name for h in on_disk.hosts],
            on_disk.deployed_at) == (None, [], ["app1", "app2", "db1", "cache1"],
                                     "2026-01-01T00:00:00Z")


def test_record_digest_covers_the_content_not_the_time() -> None:
    p = _plan("us-openai")
    first = record.from_plan(p, "1.2.3", datetime(2026, 1, 1, tzinfo=UTC))
    later = record.from_plan(p, "1.2.3", datetime(2026, 2, 1, tzinfo=UTC))
    other = record.from_plan(p, "1.2.4", datetime(2026, 1, 1, tzinfo=UTC))
    assert (first.content_digest == later.content_digest,
            first.content_digest == other.content_digest) == (True, False)


def test_a_field_outside_the_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    record.write(path, record.from_plan(_plan("us-openai"), "1.2.3"))
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "note": "hand-edited"}))
    with pytest.raises(InvalidInput, match="is not a deployment record"):
        record.read(path)


def test_a_record_of_the_first_format_is_still_read(tmp_path: Path) -> None:
    # What selfhost wrote beside the profile before the copies shared a schema.
    path = tmp_path / "deployment.json"
    path.write_text(json.dumps({
        "schema_version": 1, "customer_id": "acme", "profile_fingerprint": "sha256:ab",
        "tool_version": "0.0.9", "time": "2026-01-01T10:00:00+00:00",
        "hosts": [{"name": "app1", "address": "192.0.2.11", "components": ["app"]},
                  {"name": "db1", "address": "192.0.2.21", "components": ["postgresql"]}],
        "egress_allowlist": [{"host": "api.openai.com", "port": 443}],
        "third_parties": [{"id": "openai", "category": "ai", "purpose": "AI", "data": [],
                           "wired_by": []}]}))
    rec = record.read(path)
    assert rec is not None
    assert (rec.topology, rec.egress_allowlist, rec.third_party_ids(), rec.deployed_at,
            [h.name for h in rec.hosts]) == (
        "split", ["api.openai.com:443"], ["openai"], "2026-01-01T10:00:00Z", ["app1", "db1"])


V2 = {"name": "backend-chat", "version": "2.0"}


def _render_host_record(the_plan: Plan, host: str, release: dict[str, str] | None = None
                        ) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters.update(FilterModule().filters())
    defaults = YAML(typ="safe").load((RECORD_ROLE / "defaults" / "main.yml").read_text())
    return env.from_string((RECORD_ROLE / "templates" / "record.json.j2").read_text()).render(
        selfhost_plan=json.loads(the_plan.to_json()), inventory_hostname=host,
        selfhost_tool_version="1.2.3", record_format=defaults["record_format"],
        selfhost_record_release=release or {}).strip()


def _host_record(text: str) -> DeploymentRecord:
    # The record role adds the digest and the time to what the template renders.
    return DeploymentRecord.model_validate({**json.loads(text), "content_digest": "sha256:"
                                            + "0" * 64, "deployed_at": "2026-01-01T00:00:00Z"})


@pytest.mark.parametrize(("preset", "host"), [("split", "app1"), ("split", "db1"),
                                              ("air-gapped", "chat1")])
def test_record_template_renders_exactly_the_schema(preset: str, host: str) -> None:
    body: dict[str, Any] = json.loads(_render_host_record(_plan(preset), host, V2))
    rec = _host_record(_render_host_record(_plan(preset), host, V2))
    assert (set(body) | set(UNDIGESTED), rec.host) == (set(DeploymentRecord.model_fields), host)


def test_host_record_names_the_release_that_runs() -> None:
    rec = _host_record(_render_host_record(_plan("air-gapped"), "chat1", V2))
    assert rec.release is not None
    assert (rec.release.name, rec.release.version, rec.release.render()) == (
        "backend-chat", "2.0", "backend-chat 2.0")


def test_host_record_of_the_contract_probe_app_has_no_release() -> None:
    # `selfhost deploy` hands over {}: the probe app runs without a release artifact
    text = _render_host_record(_plan("air-gapped"), "chat1")
    assert ("release" in json.loads(text), _host_record(text).release) == (False, None)


@pytest.mark.parametrize("release", [None, V2])
def test_controller_digests_the_content_as_the_record_role_does(
        release: dict[str, str] | None) -> None:
    # The role's digest is the sha256 of the template's text (Ansible's to_json).
    text = _render_host_record(_plan("us-openai"), "chat1", release)
    assert content_digest(json.loads(text)) == (
        "sha256:" + hashlib.sha256(text.encode()).hexdigest())


def test_controller_record_names_the_release_apart_from_its_digest() -> None:
    p = _plan("air-gapped")
    v1 = record.from_plan(p, "1.2.3", release=RecordRelease(name="backend-chat", version="1.0"))
    v2 = record.from_plan(p, "1.2.3", release=RecordRelease(**V2))
    probe = record.from_plan(p, "1.2.3")
    assert (v1.release, probe.release) == (RecordRelease(name="backend-chat", version="1.0"),
                                           None)
    assert len({v1.content_digest, v2.content_digest, probe.content_digest}) == 3


def test_release_of_a_checked_manifest() -> None:
    assert record.release_of({**V2, "run": ["app"]}) == RecordRelease(**V2)
    assert record.release_of({}) is None


def test_a_controller_record_naming_only_a_version_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    record.write(path, record.from_plan(_plan("air-gapped"), "1.2.3"))
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "release": "2.0"}))
    rec = record.read(path)
    assert rec is not None
    assert rec.release == RecordRelease(name="backend-chat", version="2.0")
