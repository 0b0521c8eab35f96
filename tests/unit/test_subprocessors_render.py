"""Rendering lists: exactly the Plan's third parties, catalog facts, all formats."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from selfhost.catalog import load_catalog
from selfhost.cli.app import main
from selfhost.errors import InvalidInput
from selfhost.paths import PROFILES_DIR
from selfhost.plan import plan
from selfhost.profile_io import load_profile
from selfhost.subprocessors.document import (
    Evidence,
    EvidenceCheck,
    SubprocessorList,
    build_document,
)
from selfhost.subprocessors.files import FORMATS
from selfhost.subprocessors.render import render, render_profile, today
from selfhost.subprocessors.schema import json_schema

DAY = date(2026, 11, 27)
ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "schemas" / "subprocessor-list.v1.schema.json"

EXPECTED = {
    "air-gapped": [],
    "eu-anthropic": ["anthropic"],
    "external-db": [],
    "split": [],
    "us-openai": ["openai", "sendgrid", "sentry"],
}
CASES = [(preset, fmt) for preset in EXPECTED for fmt in FORMATS]


def _doc(preset: str) -> SubprocessorList:
    return build_document(plan(load_profile(PROFILES_DIR / f"{preset}.yaml")), on=DAY)


def _text(preset: str, fmt: str) -> str:
    return render(_doc(preset), fmt)  # type: ignore[arg-type]


def test_every_preset_has_an_expectation() -> None:
    assert sorted(EXPECTED) == sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


@pytest.mark.parametrize("preset", EXPECTED)
def test_list_names_exactly_the_plans_third_parties(preset: str) -> None:
    assert [s.id for s in _doc(preset).subprocessors] == EXPECTED[preset]


@pytest.mark.parametrize("preset", EXPECTED)
def test_facts_equal_the_catalog(preset: str) -> None:
    catalog = load_catalog()
    assert all(s.facts == catalog.get(s.id).facts() for s in _doc(preset).subprocessors)


@pytest.mark.parametrize(("preset", "fmt"), CASES)
def test_expected_vendors_appear_in_every_format(preset: str, fmt: str) -> None:
    catalog = load_catalog()
    text = _text(preset, fmt)
    assert all(catalog.get(i).name in text for i in EXPECTED[preset])


@pytest.mark.parametrize(("preset", "fmt"), CASES)
def test_unexpected_vendors_are_absent_from_every_format(preset: str, fmt: str) -> None:
    # SaaS-list vendors may appear only in "Not used"; no other vendor may appear.
    catalog = load_catalog()
    text = _text(preset, fmt).lower()
    absent = [e for e in catalog.entries if e.id not in EXPECTED[preset] and not e.in_saas_list]
    assert [e.id for e in absent if e.name.lower() in text] == []


@pytest.mark.parametrize(("preset", "fmt"), [
    c for c in CASES if not any(s.category == "ai" for s in _doc(c[0]).subprocessors)])
def test_ai_disabled_names_no_ai_provider_anywhere(preset: str, fmt: str) -> None:
    assert re.findall(r"openai|anthropic|claude|gpt", _text(preset, fmt), re.I) == []


def test_selected_ai_provider_names_the_other_under_not_used() -> None:
    doc = _doc("eu-anthropic")
    assert [n.id for n in doc.not_used] == ["hivelocity", "digitalocean", "hivelocity-redis",
                                            "openai"]


def test_self_hosting_drops_hosting_and_database_vendors_with_reasons() -> None:
    reasons = {n.id: n.reason for n in _doc("external-db").not_used}
    assert reasons["digitalocean"] == "Self-hosted: the customer's own managed PostgreSQL is used"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("preset", EXPECTED)
def test_rendering_is_deterministic(preset: str, fmt: str) -> None:
    assert _text(preset, fmt) == _text(preset, fmt)


def test_cli_output_is_byte_identical_across_runs(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["subprocessors", "render", str(PROFILES_DIR / "us-openai.yaml"), "--format",
            "html", "--date", "2026-11-27"]
    first, second = runner.invoke(main, args), runner.invoke(main, args)
    assert (first.exit_code, first.stdout_bytes) == (0, second.stdout_bytes)


def test_date_comes_from_the_option() -> None:
    doc = build_document(plan(load_profile(PROFILES_DIR / "split.yaml")), on=date(2027, 1, 2))
    assert "| Date | 2027-01-02 |" in render(doc, "md")


def test_default_date_follows_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1798761600")
    assert today() == date(2027, 1, 1)


def test_bad_source_date_epoch_is_invalid_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(InvalidInput, match="SOURCE_DATE_EPOCH='yesterday' is not a number"):
        today()


def test_header_names_customer_fingerprint_version_and_date() -> None:
    doc = _doc("us-openai")
    head = render(doc, "md").split("## What is", 1)[0]
    expected = [doc.customer.name, doc.profile_fingerprint, f"selfhost {doc.tool_version}",
                "2026-11-27"]
    assert [e for e in expected if e not in head] == []


def test_unknown_facts_show_as_to_be_confirmed() -> None:
    md = _text("us-openai", "md")
    assert ("**Data location:** to be confirmed" in md, ": unknown" in md) == (True, False)


def test_international_transfer_is_flagged_against_residency() -> None:
    anthropic = _doc("eu-anthropic").subprocessors[0].transfer
    assert (anthropic.status, anthropic.note) == (
        "international", "International transfer: data is processed in US, outside the "
        "customer's residency (EU); safeguards: Standard Contractual Clauses (SCCs)")


def test_same_country_is_within_residency() -> None:
    assert _doc("us-openai").subprocessors[0].transfer.status == "within-residency"


def test_unknown_location_is_to_be_confirmed() -> None:
    sendgrid = _doc("us-openai").subprocessors[1]
    assert sendgrid.transfer.status == "to-be-confirmed"


def test_data_flow_table_names_processors_per_data_type() -> None:
    rows = {r.data_type: r for r in _doc("us-openai").data_flows}
    assert (rows["Conversations and messages"].processed_by,
            rows["Application logs and error reports"].processed_by) == (["OpenAI"], ["Sentry"])


def test_cdn_has_access_to_traffic_in_transit(tmp_path: Path) -> None:
    profile = tmp_path / "cdn.yaml"
    data = YAML(typ="safe").load((PROFILES_DIR / "air-gapped.yaml").read_text())
    data["cdn"] = {"provider": "cloudflare"}
    YAML().dump(data, profile)
    doc = build_document(plan(load_profile(profile)), on=DAY)
    assert doc.data_flows[0].third_party_access == ["Cloudflare"]


def test_notice_terms_come_from_the_profile(tmp_path: Path) -> None:
    profile = tmp_path / "notice.yaml"
    data = YAML(typ="safe").load((PROFILES_DIR / "split.yaml").read_text())
    data["notice"] = {"days": 45, "objection_days": 20}
    YAML().dump(data, profile)
    md = render(build_document(plan(load_profile(profile)), on=DAY), "md")
    assert ("at least 45 days" in md, "within 20 days" in md) == (True, True)


# -- HTML ----------------------------------------------------------------------------

_VOID = {"meta", "link", "br", "img", "input", "hr", "path", "rect", "stop", "circle"}


class _Balance(HTMLParser):
    """Fails on any element closed out of order or left open."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


@pytest.mark.parametrize("preset", EXPECTED)
def test_html_parses_with_every_element_closed(preset: str) -> None:
    parser = _Balance()
    parser.feed(_text(preset, "html"))
    parser.close()
    assert (parser.errors, parser.stack) == ([], [])


@pytest.mark.parametrize("preset", EXPECTED)
def test_html_contains_a_well_formed_inline_svg(preset: str) -> None:
    svg = re.search(r"<svg.*?</svg>", _text(preset, "html"), re.S)
    root = ET.fromstring(svg.group(0) if svg else "<missing/>")
    assert root.tag == "{http://www.w3.org/2000/svg}svg"


@pytest.mark.parametrize("preset", EXPECTED)
def test_svg_draws_one_box_per_third_party(preset: str) -> None:
    svg = re.search(r"<svg.*?</svg>", _text(preset, "html"), re.S)
    assert svg is not None
    names = [t.text for t in ET.fromstring(svg.group(0)).iter("{http://www.w3.org/2000/svg}text")
             if "partyname" in (t.get("class") or "")]
    assert names == [load_catalog().get(i).name for i in EXPECTED[preset]]


def test_svg_says_no_data_leaves_without_third_parties() -> None:
    assert "No personal data leaves your hosts" in _text("air-gapped", "html")


def test_html_is_standalone_and_print_friendly() -> None:
    html = _text("us-openai", "html")
    external = re.findall(r'<(?:link|script|img)\b[^>]*(?:src|href)=', html)
    assert (external, "@media print" in html) == ([], True)


def test_html_escapes_profile_text(tmp_path: Path) -> None:
    profile = tmp_path / "x.yaml"
    data = YAML(typ="safe").load((PROFILES_DIR / "split.yaml").read_text())
    data["customer"]["name"] = "<script>alert(1)</script> & Co"
    YAML().dump(data, profile)
    html = render(build_document(plan(load_profile(profile)), on=DAY), "html")
    assert ("<script>" in html, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html) == (
        False, True)


# -- JSON ----------------------------------------------------------------------------

def test_committed_schema_equals_the_model() -> None:
    assert json.loads(SCHEMA_PATH.read_text(encoding="utf-8")) == json_schema()


@pytest.mark.parametrize("preset", EXPECTED)
def test_json_validates_against_the_schema_model(preset: str) -> None:
    text = _text(preset, "json")
    assert SubprocessorList.model_validate_json(text).to_json() == text


@pytest.mark.parametrize("preset", EXPECTED)
def test_json_has_exactly_the_schemas_top_level_keys(preset: str) -> None:
    data = json.loads(_text(preset, "json"))
    schema = json_schema()
    assert (set(schema["required"]) <= set(data) <= set(schema["properties"])) is True


def test_json_is_versioned() -> None:
    data = json.loads(_text("split", "json"))
    assert (data["schema_version"], data["kind"]) == (1, "selfhost-subprocessor-list")


def test_evidence_is_embedded_when_given() -> None:
    evidence = Evidence(collected_at="2026-11-27T10:00:00Z", tool_version="0.1.0", checks=[
        EvidenceCheck(host="chat1", check="egress allowlist", result="pass", detail="ok")])
    doc = build_document(plan(load_profile(PROFILES_DIR / "split.yaml")), on=DAY,
                         evidence=evidence)
    assert json.loads(doc.to_json())["evidence"]["checks"][0]["host"] == "chat1"


# -- CLI -----------------------------------------------------------------------------

def test_cli_writes_the_output_file(tmp_path: Path) -> None:
    out = tmp_path / "list.json"
    result = CliRunner().invoke(main, ["subprocessors", "render",
                                       str(PROFILES_DIR / "us-openai.yaml"), "--format",
                                       "json", "--output", str(out), "--date", "2026-11-27"])
    assert (result.exit_code, f"wrote {out}" in result.stderr,
            out.read_text() == _text("us-openai", "json")) == (0, True, True)


def test_cli_reports_a_bad_profile_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((PROFILES_DIR / "split.yaml").read_text().replace("residency: EU",
                                                                       "residency: XX"))
    result = CliRunner().invoke(main, ["subprocessors", "render", str(bad)])
    assert (result.exit_code, bool(re.search(rf"{re.escape(str(bad))}:\d+: "
                                             r"customer\.residency:", result.stderr))) == (
        2, True)


def test_cli_refuses_an_output_in_a_missing_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["subprocessors", "render",
                                       str(PROFILES_DIR / "split.yaml"), "--output",
                                       str(tmp_path / "nope" / "x.md")])
    assert (result.exit_code, "is not a directory" in result.stderr) == (2, True)


def test_library_writes_nothing_without_output() -> None:
    rendered = render_profile(PROFILES_DIR / "split.yaml", fmt="md", on=DAY)
    assert (rendered.written, rendered.content.startswith(b"# Subprocessor list")) == (
        [], True)
