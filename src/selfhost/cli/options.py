"""Options several commands share: which hosts a command works on."""

from __future__ import annotations

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
