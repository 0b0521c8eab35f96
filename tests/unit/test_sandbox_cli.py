"""`selfhost sandbox` option handling: exit codes and messages, no guest started."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from selfhost.cli.app import main
from selfhost.errors import ExitCode
from selfhost.sandbox import prereqs
from selfhost.sandbox.prereqs import Missing


@pytest.fixture(autouse=True)
def _private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELFHOST_SANDBOX_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SELFHOST_CACHE_DIR", str(tmp_path / "cache"))


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, ["sandbox", *args])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["up", "--hosts", "0"], "--hosts 0"),
        (["up", "--hosts", "51"], "--hosts 51"),
        (["up", "--name", "Bad_Name"], "--name 'Bad_Name'"),
        (["up", "--name", "trailing-"], "--name 'trailing-'"),
        (["up", "--release", "wheezy"], "--release"),
        (["up", "--hosts", "two"], "--hosts"),
        (["down", "--all", "--name", "x"], "--all and --name"),
    ],
)
def test_bad_option_message_names_it(args: list[str], expected: str) -> None:
    assert expected in _run(*args).output


@pytest.mark.parametrize(
    "args",
    [["up", "--hosts", "0"], ["up", "--name", "Bad_Name"], ["up", "--release", "wheezy"],
     ["down", "--all", "--name", "x"]],
)
def test_bad_option_exit_code(args: list[str]) -> None:
    assert _run(*args).exit_code == ExitCode.INVALID


@pytest.fixture
def nothing_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prereqs, "find_missing",
                        lambda: [Missing("`debootstrap`", "debootstrap")])


@pytest.mark.usefixtures("nothing_installed")
def test_missing_prerequisite_exit_code() -> None:
    assert _run("up").exit_code == ExitCode.PREREQUISITE


@pytest.mark.usefixtures("nothing_installed")
def test_missing_prerequisite_message_has_the_install_command() -> None:
    assert "apt-get install -y --no-install-recommends debootstrap" in _run("up").output


@pytest.mark.usefixtures("nothing_installed")
def test_missing_prerequisite_has_no_traceback() -> None:
    assert "Traceback" not in _run("up").output


def test_list_without_sandboxes() -> None:
    assert _run("list").output.strip() == "no sandboxes"


@pytest.mark.parametrize("command", ["up", "down", "list"])
def test_every_command_has_help(command: str) -> None:
    assert len(_run(command, "--help").output.splitlines()) > 5
