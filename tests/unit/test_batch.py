"""Batch lists for prospects: good rows written, bad rows reported by row and field."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from selfhost.answers import parse_set
from selfhost.cli.app import main
from selfhost.errors import InvalidInput
from selfhost.paths import PROFILES_DIR
from selfhost.plan import plan
from selfhost.profile_io import load_profile
from selfhost.subprocessors.batch import cell_value, run_batch
from selfhost.subprocessors.document import build_document
from selfhost.subprocessors.render import render

DAY = date(2026, 11, 27)
HEADER = "preset,customer.name,customer.id,customer.contact_email,email.provider," \
         "email.from_address,notice.days\n"
GOOD_1 = "us-openai,Acme Inc,acme,dpo@acme.example,,,\n"
BAD = "split,Bad Corp,bad-corp,not-an-email,,,\n"
GOOD_2 = "air-gapped,Beta GmbH,beta,dpo@beta.example,postmark,mail@beta.example,45\n"


def _csv(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "prospects.csv"
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path


def _run(path: Path, tmp_path: Path) -> tuple[list[str], list[str]]:
    result = run_batch(path, tmp_path / "out", formats=("md", "json"), on=DAY)
    errors = [e for r in result.rows for e in r.errors]
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    return errors, files


def test_a_bad_row_is_reported_by_row_and_field_and_the_others_are_written(
        tmp_path: Path) -> None:
    path = _csv(tmp_path, GOOD_1, BAD, GOOD_2)
    errors, files = _run(path, tmp_path)
    assert (errors, files) == (
        [f"{path}:3: row 2: customer.contact_email: 'not-an-email' is not a valid e-mail "
         "address (expected name@example.com)"],
        ["acme-subprocessors.json", "acme-subprocessors.md", "beta-subprocessors.json",
         "beta-subprocessors.md", "summary.csv"])


def test_summary_has_one_line_per_prospect(tmp_path: Path) -> None:
    _run(_csv(tmp_path, GOOD_1, BAD, GOOD_2), tmp_path)
    with (tmp_path / "out" / "summary.csv").open(encoding="utf-8") as handle:
        rows = [(r["row"], r["status"], r["customer_id"], r["subprocessors"])
                for r in csv.DictReader(handle)]
    assert rows == [("1", "ok", "acme", "openai sendgrid sentry"), ("2", "failed", "", ""),
                    ("3", "ok", "beta", "postmark")]


def test_a_prospect_list_equals_the_list_of_the_same_profile(tmp_path: Path) -> None:
    _run(_csv(tmp_path, GOOD_1), tmp_path)
    profile = load_profile(PROFILES_DIR / "us-openai.yaml")
    profile.customer.name, profile.customer.id = "Acme Inc", "acme"
    profile.customer.contact_email = "dpo@acme.example"
    expected = render(build_document(plan(profile), on=DAY), "json")
    assert (tmp_path / "out" / "acme-subprocessors.json").read_text() == expected


def test_typed_columns_are_read_like_init_set(tmp_path: Path) -> None:
    _run(_csv(tmp_path, GOOD_2), tmp_path)
    assert "at least 45 days" in (tmp_path / "out" / "beta-subprocessors.md").read_text()


@pytest.mark.parametrize("raw", ["Acme Inc", "dpo@acme.example", "30", "true", "no", "1.3",
                                 "[gpt-4o, gpt-4o-mini]", "  spaced  ", "x: y", "null",
                                 "prospect-00001", "a #b", "'quoted'"])
def test_cell_values_equal_init_set_parsing(raw: str) -> None:
    assert cell_value("customer.name", raw) == parse_set(f"customer.name={raw}")[1]


def test_unknown_preset_names_the_choices(tmp_path: Path) -> None:
    path = _csv(tmp_path, "nonesuch,Acme Inc,acme,dpo@acme.example,,,\n")
    errors, _ = _run(path, tmp_path)
    assert errors == [f"{path}:2: row 1: preset: unknown preset 'nonesuch' (choose one of: "
                      "air-gapped, eu-anthropic, external-db, split, us-openai)"]


def test_unknown_column_is_reported_as_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("preset,customer.colour\nsplit,blue\n")
    errors, _ = _run(path, tmp_path)
    assert errors[0].startswith(f"{path}:2: row 1: customer.colour: unknown key")


def test_duplicate_customer_ids_fail_every_row_that_shares_them(tmp_path: Path) -> None:
    path = _csv(tmp_path, GOOD_1, GOOD_1)
    errors, _ = _run(path, tmp_path)
    assert errors == [f"{path}:2: row 1: customer.id: 'acme' is also the id of row 2 (give "
                      "each prospect its own customer.id)",
                      f"{path}:3: row 2: customer.id: 'acme' is also the id of row 1 (give "
                      "each prospect its own customer.id)"]


def test_rows_without_a_customer_id_are_not_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("preset,customer.name\nnonesuch,A\nnonesuch,B\n")
    errors, _ = _run(path, tmp_path)
    assert ["unknown preset 'nonesuch'" in e for e in errors] == [True, True]


def test_summary_neutralises_spreadsheet_formulas(tmp_path: Path) -> None:
    _run(_csv(tmp_path, "us-openai,=SUM(A1),acme,dpo@acme.example,,,\n"), tmp_path)
    summary = (tmp_path / "out" / "summary.csv").read_text()
    assert ",'=SUM(A1)," in summary


def test_a_secret_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("preset,openai_api_key\nus-openai,sk-123\n")
    errors, _ = _run(path, tmp_path)
    assert (len(errors), "secrets are not accepted here" in errors[0],
            "sk-123" in errors[0]) == (1, True, False)


def test_yaml_prospects_report_their_row_and_line(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("- preset: split\n  customer.id: one\n"
                    "- preset: split\n  customer.id: two\n  topology: triangle\n")
    errors, files = _run(path, tmp_path)
    assert (errors[0].startswith(f"{path}:3: row 2: topology: Input should be"),
            "one-subprocessors.md" in files) == (True, True)


def test_missing_preset_column_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("customer.name\nAcme\n")
    with pytest.raises(InvalidInput, match="the header has no 'preset' column"):
        run_batch(path, tmp_path / "out", formats=("md",), on=DAY)


def test_unknown_file_type_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("x")
    with pytest.raises(InvalidInput, match=r"name the file \.csv, \.yaml or \.yml"):
        run_batch(path, tmp_path / "out", formats=("md",), on=DAY)


def test_cli_exit_code_is_non_zero_when_a_row_failed(tmp_path: Path) -> None:
    path = _csv(tmp_path, GOOD_1, BAD)
    result = CliRunner().invoke(main, ["subprocessors", "batch", str(path), "--output-dir",
                                       str(tmp_path / "out"), "--format", "html"])
    assert (result.exit_code, "row 2: customer.contact_email" in result.stderr,
            "1 of 2 prospects written" in result.stdout) == (2, True, True)


def test_cli_exit_code_is_0_when_every_row_is_written(tmp_path: Path) -> None:
    path = _csv(tmp_path, GOOD_1, GOOD_2)
    result = CliRunner().invoke(main, ["subprocessors", "batch", str(path), "--output-dir",
                                       str(tmp_path / "out")])
    assert (result.exit_code, len(list((tmp_path / "out").iterdir()))) == (0, 7)
