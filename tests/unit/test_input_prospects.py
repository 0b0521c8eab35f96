"""Prospects files: the same YAML limits as profiles, ids that never collide,
cells that stay text in a spreadsheet, oversized cells as row errors."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from selfhost.cli import main

HEADER = "preset,customer.name,customer.id,customer.contact_email\n"


def _batch(path: Path, out: Path) -> Result:
    return CliRunner().invoke(main, ["subprocessors", "batch", str(path), "--output-dir",
                                     str(out), "--format", "json"])


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    # 533 bytes that expand to 10**9 nodes: today's loader never finishes on it.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = tmp_path / "prospects.yaml"
    path.write_text("- preset: us-openai\n  bomb:\n" + "".join(
        f"    {line}\n" for line in lines))
    result = subprocess.run(
        [sys.executable, "-c", "from selfhost.cli import main; main()", "subprocessors",
         "batch", str(path), "--output-dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stderr.strip()) == (
        2, f"error: {path}:1: the document expands to more than 5000 nodes through aliases "
           "(remove the anchors and aliases)")
    assert not (tmp_path / "out").exists()


def test_a_nested_customer_id_collides_with_a_column_one_and_both_are_reported(
        tmp_path: Path) -> None:
    path = tmp_path / "prospects.yaml"
    path.write_text(
        "- preset: us-openai\n  customer.id: acme\n  customer.name: Acme Inc\n"
        "  customer.contact_email: dpo@acme.example\n"
        "- preset: us-openai\n  customer:\n    id: acme\n    name: Other Corp\n"
        "    contact_email: dpo@other.example\n    residency: US\n")
    out = tmp_path / "out"
    result = _batch(path, out)
    assert result.exit_code == 2
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [(r["status"], r["errors"]) for r in rows] == [
        ("failed", f"{path}:1: row 1: customer.id: 'acme' is also the id of row 2 (give each "
                   "prospect its own customer.id)"),
        ("failed", f"{path}:5: row 2: customer.id: 'acme' is also the id of row 1 (give each "
                   "prospect its own customer.id)")]
    assert sorted(p.name for p in out.iterdir()) == ["summary.csv"]


def test_every_summary_cell_a_spreadsheet_would_run_is_neutralised(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Error cells start with the file's name as given: here one a spreadsheet runs.
    monkeypatch.chdir(tmp_path)
    path = Path("@prospects.csv")
    path.write_text(HEADER + "us-openai,-Good Corp,good,dpo@good.example\n"
                    "us-openai,@Other Corp,other,dpo@other.example\n"
                    "=cmd|' /C calc'!A0,Bad Corp,bad,dpo@bad.example\n")
    out = tmp_path / "out"
    _batch(path, out)
    rows = list(csv.reader((out / "summary.csv").open()))[1:]
    assert rows[2][7].startswith("'@prospects.csv:4: row 3: preset: unknown preset")
    written = [cell for row in rows for cell in row]
    assert [c for c in written if c[:1] in ("=", "+", "-", "@", "\t", "\r")] == []
    assert [row[4] for row in rows[:2]] == ["'-Good Corp", "'@Other Corp"]


def test_an_oversized_cell_is_a_row_error_and_the_other_rows_are_written(
        tmp_path: Path) -> None:
    path = tmp_path / "prospects.csv"
    path.write_text(HEADER + "us-openai,Big Corp," + "x" * 200_000 + ",dpo@big.example\n"
                    "us-openai,Good Corp,good,dpo@good.example\n")
    out = tmp_path / "out"
    result = _batch(path, out)
    assert (result.exit_code, "Traceback" in result.output) == (2, False)
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [(r["row"], r["status"], r["errors"]) for r in rows] == [
        ("1", "failed", f"{path}:2: row 1: field larger than field limit (131072) (shorten "
                        "the cell)"),
        ("2", "ok", "")]
    assert (out / "good-subprocessors.json").is_file()
