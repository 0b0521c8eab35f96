"""Every top-level command, in the order ``selfhost --help`` lists them."""

from __future__ import annotations

import click

from selfhost.cli.profile import init, plan, validate
from selfhost.cli.sandbox import sandbox

ALL: list[click.Command] = [init, validate, plan, sandbox]
