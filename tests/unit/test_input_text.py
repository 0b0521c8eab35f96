"""Every string of a profile is single-line text: no newline, no control character.

These strings land in nginx sites, systemd units and the app's environment
file, where a newline would start a directive of its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from input_support import PROFILE, validate

from selfhost.cli import main

FIX = "(remove it; values here are single-line text without control characters)"


@pytest.mark.parametrize(("old", "new", "line", "field", "char"), [
    # a trailing newline slipped through re.match(...$) into the nginx site
    ("  domain: chat.acme.example", '  domain: "chat.acme.example\\n"', 11, "tls.domain",
     "\\n"),
    ("    - name: chat1", '    - name: "chat1\\n"', 8, "hosts.app.0.name", "\\n"),
    ("  id: acme", '  id: "acme\\n"', 3, "customer.id", "\\n"),
    ("  contact_email: dpo@acme.example", '  contact_email: "dpo@acme.example\\n"', 4,
     "customer.contact_email", "\\n"),
    ("  name: ACME", '  name: "ACME\\nExecStartPre=+/bin/sh"', 2, "customer.name", "\\n"),
    ("  name: ACME", '  name: "ACME\\tGmbH"', 2, "customer.name", "\\t"),
    ("  name: ACME", '  name: "ACME\\u2028GmbH"', 2, "customer.name", "\\u2028"),
])
def test_control_characters_are_refused_with_file_line_and_field(
        tmp_path: Path, old: str, new: str, line: int, field: str, char: str) -> None:
    code, output = validate(tmp_path, PROFILE.replace(old, new))
    assert (code, output.strip()) == (
        2, f"P:{line}: {field}: contains the control character '{char}' {FIX}")


def test_a_model_name_with_a_newline_is_refused(tmp_path: Path) -> None:
    text = PROFILE.replace("  residency: DE", "  residency: US") + (
        'ai:\n  provider: openai\n  models: [gpt-4o, "gpt-4o\\nx"]\n')
    code, output = validate(tmp_path, text)
    assert (code, output.strip()) == (
        2, f"P:14: ai.models: contains the control character '\\n' {FIX}")


def test_init_set_refuses_a_newline_and_writes_nothing(tmp_path: Path,
                                                        key_file: Path) -> None:
    result = CliRunner().invoke(main, [
        "init", "--output", str(tmp_path / "acme.yaml"), "--key-file", str(key_file),
        "--preset", "air-gapped", "--set", "hosts.app.0.address=192.0.2.10",
        "--set", 'tls.domain="chat.acme.example\\nserver_name evil"'])
    assert (result.exit_code, result.output.strip()) == (
        2, f"error: --set tls.domain: contains the control character '\\n' {FIX}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secrets.key"]


def test_a_supplied_secret_with_a_newline_is_refused(tmp_path: Path, key_file: Path) -> None:
    result = CliRunner().invoke(main, [
        "init", "--output", str(tmp_path / "acme.yaml"), "--key-file", str(key_file),
        "--preset", "us-openai", "--set", "hosts.app.0.address=192.0.2.10"],
        env={"SELFHOST_OPENAI_API_KEY": "sk-test-value\nEXTRA=1"})
    assert result.exit_code == 2
    assert ("openai_api_key: the value contains a newline or another control character"
            in result.output)
    assert "sk-test-value" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secrets.key"]
