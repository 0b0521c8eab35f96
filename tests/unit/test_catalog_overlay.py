"""The customer's catalog overlay: validated like a profile, named in the list."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from selfhost.catalog import UNKNOWN, load_catalog
from selfhost.cli.app import main
from selfhost.paths import PROFILES_DIR

OVERLAY = """\
schema_version: 1
vendors:
  openai:
    address: OpenAI Ireland Ltd, 117-126 Sheriff Street Upper, Dublin 1, Ireland
    contact_person:
      name: Data Protection Officer
      contact: privacy@openai.com
    data_usage: No training on our API data (our agreement of 2026-03-01)
"""


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    path = tmp_path / "profile.yaml"
    shutil.copy(PROFILES_DIR / "us-openai.yaml", path)
    return path


def render(profile: Path, *extra: str) -> Result:
    return CliRunner().invoke(main, ["subprocessors", "render", str(profile), "--date",
                                     "2026-12-01", *extra])


def overlay(tmp_path: Path, text: str = OVERLAY) -> Path:
    path = tmp_path / "overlay.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def by_id(result: Result) -> dict[str, dict[str, object]]:
    assert result.exit_code == 0, result.output
    return {s["id"]: s for s in json.loads(result.stdout)["subprocessors"]}


def test_the_overlays_facts_replace_the_catalogs(profile: Path, tmp_path: Path) -> None:
    subs = by_id(render(profile, "--format", "json", "--catalog-overlay",
                        str(overlay(tmp_path))))
    facts = subs["openai"]["facts"]
    assert isinstance(facts, dict)
    assert facts["address"] == "OpenAI Ireland Ltd, 117-126 Sheriff Street Upper, " \
        "Dublin 1, Ireland"
    assert facts["contact_person"] == {"name": "Data Protection Officer",
                                       "position": UNKNOWN, "contact": "privacy@openai.com"}
    assert subs["openai"]["overlay_facts"] == [
        "address", "data_usage", "contact_person.contact", "contact_person.name"]
    assert subs["sendgrid"]["overlay_facts"] == []
    sendgrid = subs["sendgrid"]["facts"]
    assert isinstance(sendgrid, dict)
    assert sendgrid["address"] == UNKNOWN


def test_the_list_says_which_facts_came_from_the_overlay(profile: Path,
                                                         tmp_path: Path) -> None:
    result = render(profile, "--catalog-overlay", str(overlay(tmp_path)))
    assert result.exit_code == 0, result.output
    assert "**Facts from your catalog overlay:** address, data usage, contact person " \
        "contact, contact person name" in result.stdout
    assert "**Contact person:** Data Protection Officer, to be confirmed, " \
        "privacy@openai.com" in result.stdout


def test_the_profile_key_is_relative_to_the_profile(profile: Path, tmp_path: Path) -> None:
    overlay(tmp_path)
    profile.write_text(profile.read_text(encoding="utf-8")
                       + "catalog_overlay: overlay.yaml\n", encoding="utf-8")
    subs = by_id(render(profile, "--format", "json"))
    assert subs["openai"]["overlay_facts"] == [
        "address", "data_usage", "contact_person.contact", "contact_person.name"]


@pytest.mark.parametrize(("text", "expected"), [
    ("schema_version: 1\nvendors:\n  openai:\n    adress: x\n",
     "overlay.yaml:4: vendors.openai.adress: unknown key"),
    ("schema_version: 1\nvendors:\n  acme:\n    address: x\n",
     "overlay.yaml:3: vendors.acme: no vendor 'acme' in the catalog (use one of: openai,"),
    ("schema_version: 1\nvendors:\n  openai:\n    location_codes: [XX]\n",
     "overlay.yaml:4: vendors.openai.location_codes"),
    ("schema_version: 1\nvendors:\n  openai:\n    address: ''\n",
     "overlay.yaml:4: vendors.openai.address:"),
    ("- openai\n", "overlay.yaml:1: the document is a list, not a mapping"),
])
def test_a_bad_overlay_names_file_line_and_field(profile: Path, tmp_path: Path, text: str,
                                                 expected: str) -> None:
    result = render(profile, "--catalog-overlay", str(overlay(tmp_path, text)))
    assert result.exit_code == 2
    assert expected in result.stderr
    assert "Traceback" not in result.output


def test_a_missing_overlay_is_an_input_error(profile: Path, tmp_path: Path) -> None:
    result = render(profile, "--catalog-overlay", str(tmp_path / "absent.yaml"))
    assert result.exit_code == 2
    assert "absent.yaml:1: the catalog overlay does not exist" in result.stderr


def test_the_overlay_does_not_change_the_profiles_fingerprint(profile: Path,
                                                              tmp_path: Path) -> None:
    before = json.loads(render(profile, "--format", "json").stdout)["profile_fingerprint"]
    overlay(tmp_path)
    profile.write_text(profile.read_text(encoding="utf-8")
                       + "catalog_overlay: overlay.yaml\n", encoding="utf-8")
    after = json.loads(render(profile, "--format", "json").stdout)["profile_fingerprint"]
    assert before == after


def test_the_shipped_catalog_invents_no_contact_person() -> None:
    """Annex III fields are in every entry; nobody's contact person is guessed."""
    for entry in load_catalog().entries:
        person = entry.contact_person
        assert (person.name, person.position, person.contact) == (UNKNOWN,) * 3, entry.id
        assert entry.processing_description != UNKNOWN, entry.id
