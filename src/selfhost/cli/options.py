"""Options several commands share: which hosts a command works on."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

FILE = click.Path(path_type=Path, dir_okay=False)

F = TypeVar("F", bound=Callable[..., Any])

#: ``--inventory FILE``: the hosts of an Ansible YAML inventory
INVENTORY = click.option("--inventory", type=FILE, default=None,
                         help="Ansible YAML inventory whose host names are the profile's.")


def sandbox_option(help_text: str) -> Callable[[F], F]:
    """``--sandbox NAME`` (as ``sandbox_name``): the hosts are that sandbox's guests;
    ``help_text`` says what the command does with them."""
    return click.option("--sandbox", "sandbox_name", metavar="NAME", default=None,
                        help=help_text)


def ask_passphrase(profile: Path, key_file: Path | None) -> str | None:
    """The secrets' passphrase from a prompt, when nothing else can open them (no key
    file, no SELFHOST_PASSPHRASE, a terminal to ask on, a passphrase-locked file)."""
    from selfhost import secrets

    if (key_file is None and secrets.passphrase_from_env() is None and sys.stdin.isatty()
            and secrets.locked_with(profile) == "passphrase"):
        return str(click.prompt("Passphrase for the secrets file", hide_input=True))
    return None
