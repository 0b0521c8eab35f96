"""Prospects settle only what shapes their list: deployment-only settings do not fail
a row, impossible or contradictory choices still do."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

from click.testing import CliRunner, Result

from selfhost.cli.app import main
from selfhost.subprocessors.batch import run_batch

DAY = date(2026, 11, 27)
HEADER = "preset,customer.name,customer.id,customer.residency,ai.provider,email.provider," \
         "email.from_address,monitoring.provider,tls.mode\n"


def _batch(tmp_path: Path, *rows: str) -> tuple[dict[int, list[str]], Path]:
    path = tmp_path / "prospects.csv"
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    out = tmp_path / "out"
    result = run_batch(path, out, formats=("md", "json"), on=DAY)
    return {r.row: r.errors for r in result.rows}, out


def _ids(out: Path, customer: str) -> list[str]:
    doc = json.loads((out / f"{customer}-subprocessors.json").read_text(encoding="utf-8"))
    return [s["id"] for s in doc["subprocessors"]]


def test_deployment_only_settings_do_not_fail_a_prospect(tmp_path: Path) -> None:
    errors, out = _batch(
        tmp_path,
        # SendGrid without a sender address (air-gapped has none)
        "air-gapped,Mail Co,mail-co,,,sendgrid,,,\n",
        # the customer's own SMTP relay, host not yet known
        "air-gapped,Relay Co,relay-co,,,smtp,,,\n",
        # AI off in a preset that lists models
        "us-openai,No AI Co,no-ai-co,,disabled,,,,\n",
        # self-hosted monitoring without its collector's endpoint
        "us-openai,Own Mon Co,own-mon-co,,,,,self-hosted,\n",
        # the customer's own certificate, files not yet supplied
        "air-gapped,Own Cert Co,own-cert-co,,,,,,provided\n",
    )
    assert errors == {1: [], 2: [], 3: [], 4: [], 5: []}
    assert _ids(out, "mail-co") == ["sendgrid"]
    assert _ids(out, "relay-co") == []
    assert _ids(out, "no-ai-co") == ["sendgrid", "sentry"]
    assert _ids(out, "own-mon-co") == ["openai", "sendgrid"]
    for written in out.glob("*-subprocessors.*"):
        assert ".invalid" not in written.read_text(encoding="utf-8"), written.name


def test_contradictory_or_impossible_choices_still_fail(tmp_path: Path) -> None:
    errors, out = _batch(
        tmp_path,
        "us-openai,Mistral Co,mistral-co,,mistral,,,,\n",
        "us-openai,EU Co,eu-co,EU,,,,,\n",
        "us-openai,Bad Mail Co,bad-mail-co,,,sendgrid,not-an-address,,\n",
    )
    assert "ai.provider: Input should be 'openai', 'anthropic' or 'disabled'" in errors[1][0]
    assert "ai.international_transfer_acknowledged: residency EU with the US provider " \
        "openai" in errors[2][0]
    assert "email.from_address: 'not-an-address' is not a valid e-mail address" in errors[3][0]
    assert not (out / "eu-co-subprocessors.json").exists()


ANSWERS = """\
customer:
  name: Prospect Co
  id: prospect-co
  contact_email: dpo@prospect.example
  residency: DE
ai:
  provider: anthropic
  international_transfer_acknowledged: true
email:
  provider: sendgrid
"""


def _render(tmp_path: Path, text: str, *extra: str) -> Result:
    path = tmp_path / "answers.yaml"
    path.write_text(text, encoding="utf-8")
    return CliRunner().invoke(main, ["subprocessors", "render", str(path), "--prospect",
                                     "--format", "json", "--date", "2026-11-27", *extra])


def test_an_answers_file_renders_as_a_prospect(tmp_path: Path) -> None:
    """No host address, domain or sender address: none of them shapes the list."""
    result = _render(tmp_path, ANSWERS)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["customer"]["name"] == "Prospect Co"
    assert [s["id"] for s in doc["subprocessors"]] == ["anthropic", "sendgrid"]
    assert ".invalid" not in result.stdout


def test_a_prospect_over_a_preset_keeps_the_presets_choices(tmp_path: Path) -> None:
    result = _render(tmp_path, ANSWERS, "--preset", "us-openai")
    assert result.exit_code == 0, result.output
    assert [s["id"] for s in json.loads(result.stdout)["subprocessors"]] == \
        ["anthropic", "sendgrid", "sentry"]


def test_a_prospects_bad_choice_names_file_line_and_field(tmp_path: Path) -> None:
    result = _render(tmp_path, ANSWERS.replace("provider: sendgrid", "provider: mailchimp"))
    assert result.exit_code == 2
    assert "answers.yaml:10: email.provider: Input should be" in result.stderr


def test_without_prospect_an_answers_file_is_not_a_profile(tmp_path: Path) -> None:
    path = tmp_path / "answers.yaml"
    path.write_text(ANSWERS, encoding="utf-8")
    result = CliRunner().invoke(main, ["subprocessors", "render", str(path)])
    assert result.exit_code == 2
    assert "hosts.app" in result.stderr


def test_the_summary_names_each_prospects_vendors_and_transfers_outside_its_residency(
        tmp_path: Path) -> None:
    path = tmp_path / "prospects.csv"
    path.write_text(
        "preset,customer.name,customer.id,customer.residency,ai.provider,"
        "ai.international_transfer_acknowledged,email.provider,monitoring.provider,"
        "cdn.provider\n"
        "us-openai,US Co,us-co,US,openai,,none,none,none\n"
        "eu-anthropic,EU Co,eu-co,EU,anthropic,true,postmark,sentry,none\n"
        "air-gapped,Gap Co,gap-co,EU,disabled,,none,none,none\n"
        "us-openai,Mix Co,mix-co,DE,openai,true,sendgrid,datadog,cloudflare\n",
        encoding="utf-8")
    run_batch(path, tmp_path / "out", formats=("json",), on=DAY)
    with (tmp_path / "out" / "summary.csv").open(encoding="utf-8") as handle:
        rows = [(r["customer_id"], r["residency"], r["vendors"],
                 r["transfers_outside_residency"]) for r in csv.DictReader(handle)]
    assert rows == [
        # OpenAI processes in the US: inside a US customer's residency
        ("us-co", "US", "OpenAI", "none"),
        ("eu-co", "EU", "Anthropic | Postmark | Sentry",
         "Anthropic: US (Standard Contractual Clauses (SCCs)) | Postmark: location to be "
         "confirmed | Sentry: location to be confirmed"),
        ("gap-co", "EU", "none", "none"),
        ("mix-co", "DE", "OpenAI | SendGrid | Datadog | Cloudflare",
         "OpenAI: US (Standard Contractual Clauses (SCCs)) | SendGrid: location to be "
         "confirmed | Datadog: location to be confirmed | Cloudflare: location to be "
         "confirmed"),
    ]


def test_a_failed_prospect_has_no_vendors_in_the_summary(tmp_path: Path) -> None:
    _errors, out = _batch(tmp_path, "eu-anthropic,Bad Co,bad-co,EU,mistral,,,,\n")
    with (out / "summary.csv").open(encoding="utf-8") as handle:
        row = next(csv.DictReader(handle))
    assert (row["status"], row["vendors"], row["transfers_outside_residency"]) == (
        "failed", "", "")
