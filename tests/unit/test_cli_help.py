"""Every command, at every depth, explains itself."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from selfhost.cli import main


def _walk(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found += _walk(sub, (*path, name))
    return found


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


ALL = _walk(main)


def test_the_profile_commands_are_registered() -> None:
    assert {("init",), ("validate",), ("plan",)} <= set(ALL)


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "selfhost")
def test_command_has_help_text(path: tuple[str, ...]) -> None:
    assert (_command(path).help or "").strip()


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "selfhost")
def test_every_option_has_help(path: tuple[str, ...]) -> None:
    undocumented = [p.name for p in _command(path).params
                    if isinstance(p, click.Option) and not p.help and p.name != "help"]
    assert undocumented == []


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "selfhost")
def test_help_runs(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert (result.exit_code, "Usage:" in result.output) == (0, True)
