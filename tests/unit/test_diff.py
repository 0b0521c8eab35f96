"""Change notices: added/removed/changed, the dates, and the exit codes."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from selfhost.cli.app import main
from selfhost.errors import ValidationFailed
from selfhost.paths import PROFILES_DIR
from selfhost.subprocessors.diff import diff_files

NOTICE = date(2026, 12, 1)
AIR_GAPPED = PROFILES_DIR / "air-gapped.yaml"
US_OPENAI = PROFILES_DIR / "us-openai.yaml"


def _variant(tmp_path: Path, base: Path, name: str, **changes: object) -> Path:
    data = YAML(typ="safe").load(base.read_text(encoding="utf-8"))
    data.update(changes)
    path = tmp_path / f"{name}.yaml"
    YAML().dump(data, path)
    return path


def _json_list(tmp_path: Path, profile: Path, name: str) -> Path:
    result = CliRunner().invoke(main, ["subprocessors", "render", str(profile), "--format",
                                       "json", "--date", "2026-11-01"])
    assert result.exit_code == 0, result.stderr
    path = tmp_path / f"{name}.json"
    path.write_bytes(result.stdout_bytes)
    return path


def test_added_vendors_between_profiles() -> None:
    notice = diff_files(AIR_GAPPED, US_OPENAI, NOTICE)
    assert [s.id for s in notice.added] == ["openai", "sendgrid", "sentry"]


def test_removed_vendors_between_profiles() -> None:
    notice = diff_files(US_OPENAI, AIR_GAPPED, NOTICE)
    assert ([s.id for s in notice.removed], notice.added) == (
        ["openai", "sendgrid", "sentry"], [])


def test_effective_date_and_objection_deadline_use_the_default_notice_terms() -> None:
    notice = diff_files(AIR_GAPPED, US_OPENAI, NOTICE)
    assert (notice.effective_date, notice.objection_deadline) == (
        date(2026, 12, 31), date(2026, 12, 15))


def test_dates_follow_the_new_profiles_notice_terms(tmp_path: Path) -> None:
    new = _variant(tmp_path, US_OPENAI, "new", notice={"days": 60, "objection_days": 21})
    notice = diff_files(AIR_GAPPED, new, NOTICE)
    assert (notice.effective_date, notice.objection_deadline) == (
        date(2027, 1, 30), date(2026, 12, 22))


def test_zero_day_notice_takes_effect_on_the_notice_date(tmp_path: Path) -> None:
    new = _variant(tmp_path, US_OPENAI, "new", notice={"days": 0, "objection_days": 0})
    notice = diff_files(AIR_GAPPED, new, NOTICE)
    assert (notice.effective_date, notice.objection_deadline) == (NOTICE, NOTICE)


def test_changed_fields_are_listed_field_by_field(tmp_path: Path) -> None:
    old = _json_list(tmp_path, US_OPENAI, "old")
    data = json.loads(old.read_text())
    data["subprocessors"][0]["facts"]["data_location"] = "Ireland"
    data["subprocessors"][0]["facts"]["certifications"] = ["ISO 27001"]
    new = tmp_path / "new.json"
    new.write_text(json.dumps(data))
    notice = diff_files(old, new, NOTICE)
    assert [(c.id, [(f.field, f.old, f.new) for f in c.changes]) for c in notice.changed] == [
        ("openai", [("facts.certifications", ["SOC 2 Type II", "ISO 27001"], ["ISO 27001"]),
                    ("facts.data_location", "United States (primary)", "Ireland")])]


def test_a_region_change_in_the_profile_is_a_changed_endpoint(tmp_path: Path) -> None:
    new = _variant(tmp_path, US_OPENAI, "new",
                   monitoring={"provider": "sentry", "sentry_region": "de"})
    notice = diff_files(US_OPENAI, new, NOTICE)
    assert [(f.field, f.new) for c in notice.changed for f in c.changes] == [
        ("use.endpoints", [".ingest.de.sentry.io:443"])]


def test_profile_and_json_list_compare_alike(tmp_path: Path) -> None:
    as_json = _json_list(tmp_path, US_OPENAI, "current")
    assert diff_files(as_json, US_OPENAI, NOTICE).has_changes is False


def test_a_non_list_json_file_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(ValidationFailed, match=r"bad\.json:1: customer: required field"):
        diff_files(bad, US_OPENAI, NOTICE)


# -- CLI -----------------------------------------------------------------------------

def _diff(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["subprocessors", "diff", *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_exits_0_and_says_so_when_nothing_changed() -> None:
    code, out, _ = _diff(str(US_OPENAI), str(US_OPENAI), "--notice-date", "2026-12-01")
    assert (code, "No subprocessor is added, removed or changed." in out) == (0, True)


def test_cli_exits_1_with_the_notice_when_something_changed() -> None:
    code, out, _ = _diff(str(AIR_GAPPED), str(US_OPENAI), "--notice-date", "2026-12-01")
    assert (code, "## Added" in out, "| Change may take effect on | 2026-12-31 |" in out,
            "| Objections accepted until | 2026-12-15 |" in out) == (1, True, True, True)


def test_cli_json_notice_is_parseable_with_dates() -> None:
    code, out, _ = _diff(str(AIR_GAPPED), str(US_OPENAI), "--notice-date", "2026-12-01",
                         "--format", "json")
    data = json.loads(out)
    assert (code, data["effective_date"], data["objection_deadline"],
            [s["id"] for s in data["added"]]) == (
        1, "2026-12-31", "2026-12-15", ["openai", "sendgrid", "sentry"])


def test_cli_missing_file_is_invalid_input(tmp_path: Path) -> None:
    code, _, err = _diff(str(tmp_path / "nope.yaml"), str(US_OPENAI))
    assert (code, "nope.yaml: the file does not exist" in err) == (2, True)


def test_cli_rejects_a_malformed_notice_date() -> None:
    code, _, err = _diff(str(US_OPENAI), str(US_OPENAI), "--notice-date", "01/12/2026")
    assert (code, "--notice-date" in err) == (2, True)
