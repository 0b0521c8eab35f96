"""README's list of checks is the one the code defines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from selfhost.verify import catalog
from selfhost.verify.components import DEFS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_lists_the_checks_the_code_defines() -> None:
    text = README.read_text(encoding="utf-8")
    assert catalog.rewrite(text) == text, (
        "README.md's list of checks is out of date: run "
        "`python -m selfhost.verify.catalog README.md`")


def test_the_readme_block_names_every_check_id() -> None:
    text = README.read_text(encoding="utf-8")
    text = text[text.index(catalog.BEGIN):text.index(catalog.END)]
    listed = set(re.findall(r"^\| `([a-z0-9_.]+?)(?:\.<provider>)?` \|", text, re.MULTILINE))
    assert listed == {d.id for d in DEFS}


def test_a_stale_block_is_replaced() -> None:
    stale = f"intro\n{catalog.BEGIN}\n| `redis.gone` | old |\n{catalog.END}\nrest\n"
    assert catalog.rewrite(stale) == f"intro\n{catalog.block()}\nrest\n"


def test_a_file_without_the_markers_is_refused(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "README.md"
    path.write_text("no markers here\n")
    assert catalog.main([str(path)]) == 2
    assert (path.read_text(), f"{path}: no block between" in capsys.readouterr().err) == (
        "no markers here\n", True)
