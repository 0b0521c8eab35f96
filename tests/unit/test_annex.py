"""Annex III as PDF (read back with poppler's pdftotext) and the DPV JSON-LD export
(read back with pyld, a JSON-LD processor)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from pyld import jsonld

from selfhost.cli.app import main
from selfhost.paths import PROFILES_DIR

PROFILE = PROFILES_DIR / "us-openai.yaml"
DPV = "https://w3id.org/dpv#"
OVERLAY = """\
schema_version: 1
vendors:
  openai:
    address: OpenAI Ireland Ltd, 117-126 Sheriff Street Upper, Dublin 1, Ireland
    contact_person: {name: Data Protection Officer, position: DPO}
"""


def annex(*args: str) -> Result:
    return CliRunner().invoke(main, ["subprocessors", "annex", str(PROFILE), "--date",
                                     "2026-12-01", *args])


def pdf_text(path: Path) -> str:
    tool = shutil.which("pdftotext")
    assert tool is not None, "pdftotext is missing: apt-get install poppler-utils"
    done = subprocess.run([tool, "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True)
    return " ".join(done.stdout.split())


@pytest.fixture
def overlay(tmp_path: Path) -> Path:
    path = tmp_path / "overlay.yaml"
    path.write_text(OVERLAY, encoding="utf-8")
    return path


def test_the_pdf_is_the_annex(tmp_path: Path, overlay: Path) -> None:
    out = tmp_path / "annex.pdf"
    result = annex("--output", str(out), "--catalog-overlay", str(overlay))
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"%PDF-")
    text = pdf_text(out)
    assert text.startswith("Annex III — List of sub-processors")
    assert "Controller Example US Customer (example-us)" in text
    assert "1. OpenAI" in text
    assert "2. SendGrid" in text
    assert "Address OpenAI Ireland Ltd, 117-126 Sheriff Street Upper, Dublin 1, Ireland" \
        in text
    assert "Contact person: name Data Protection Officer" in text
    assert "Contact person: position DPO" in text
    # SendGrid's address is not known: shown so, not guessed
    sendgrid = text[text.index("2. SendGrid"):]
    assert "Address to be confirmed" in sendgrid
    assert "Page 1 of" in text


def test_a_pdf_needs_an_output_file() -> None:
    result = annex("--format", "pdf")
    assert result.exit_code == 2
    assert "--format pdf needs --output" in result.stderr


def test_the_html_annex_marks_unconfirmed_facts() -> None:
    result = annex("--format", "html")
    assert result.exit_code == 0, result.output
    assert "<h1>Annex III — List of sub-processors</h1>" in result.stdout
    assert '<th>Address</th><td class="tbc">to be confirmed</td>' in result.stdout


def _expanded(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    expanded: list[dict[str, Any]] = jsonld.expand(json.loads(result.stdout))
    assert len(expanded) == 1
    return expanded[0]


def _processors(process: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["@id"]: p for p in process[DPV + "hasDataProcessor"]}


def test_the_dpv_export_expands_to_dpv_terms(overlay: Path) -> None:
    process = _expanded(annex("--format", "dpv", "--catalog-overlay", str(overlay)))
    assert process["@type"] == [DPV + "Process"]
    controller = process[DPV + "hasDataController"][0]
    assert controller[DPV + "hasName"] == [{"@value": "Example US Customer"}]
    openai = _processors(process)["urn:selfhost:vendor:openai"]
    assert openai["@type"] == [DPV + "DataSubProcessor"]
    assert openai[DPV + "hasName"] == [{"@value": "OpenAI, LLC"}]
    assert openai[DPV + "hasLocation"] == [{"@id": "https://w3id.org/dpv/loc#US"}]
    assert openai[DPV + "hasAddress"][0]["@value"].startswith("OpenAI Ireland Ltd")
    assert openai[DPV + "hasTechnicalOrganisationalMeasure"] == [
        {"@id": DPV + "StandardContractualClauses"}]
    data = [d["http://purl.org/dc/terms/description"][0]["@value"]
            for d in openai[DPV + "hasPersonalData"]]
    assert "conversation messages (user questions and context)" in data


def test_the_dpv_export_leaves_unknown_facts_out() -> None:
    sendgrid = _processors(_expanded(annex("--format", "dpv")))["urn:selfhost:vendor:sendgrid"]
    assert DPV + "hasAddress" not in sendgrid
    assert "https://schema.org/contactPoint" not in sendgrid
