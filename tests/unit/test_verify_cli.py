"""`selfhost verify` and `subprocessors render --verify` refuse bad input before any host."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from selfhost.cli.app import main
from selfhost.paths import preset_path

PRESET = str(preset_path("air-gapped"))


@pytest.mark.parametrize(("args", "code", "message"), [
    (["verify", PRESET, "--inventory", "hosts.yml", "--sandbox", "ci"], 2,
     "--inventory and --sandbox both say where the hosts are; give one"),
    (["verify", PRESET, "--sandbox", "ci", "--junit", "/nonexistent-dir/junit.xml"], 2,
     "--junit /nonexistent-dir/junit.xml: the directory /nonexistent-dir does not exist"),
    (["verify", PRESET, "--sandbox", "ci", "--json", "/nonexistent-dir/r.json"], 2,
     "--json /nonexistent-dir/r.json: the directory /nonexistent-dir does not exist"),
    (["verify", "no-such-profile.yaml", "--sandbox", "ci"], 2,
     "no-such-profile.yaml:1: the file does not exist"),
    (["subprocessors", "render", PRESET, "--verify"], 2,
     "--verify needs the hosts: give --inventory FILE or --sandbox NAME"),
])
def test_bad_input_exits_with_its_message(args: list[str], code: int, message: str,
                                          tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, args)
    assert (result.exit_code, message in result.output) == (code, True), result.output


def test_unknown_sandbox_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELFHOST_SANDBOX_DIR", str(tmp_path / "state"))
    result = CliRunner().invoke(main, ["verify", PRESET, "--sandbox", "nosuch"])
    assert (result.exit_code, "there is no sandbox named 'nosuch'" in result.output) == \
        (2, True), result.output
