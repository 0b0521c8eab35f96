"""status."""

from __future__ import annotations

import json
from pathlib import Path

import click

from selfhost.cli.options import FILE, INVENTORY, sandbox_option
from selfhost.errors import ExitCode


@click.command()
@click.argument("profile", type=FILE)
@INVENTORY
@sandbox_option("Read the guests of this sandbox (as `deploy --sandbox` mapped them).")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def status(ctx: click.Context, *, profile: Path, inventory: Path | None,
           sandbox_name: str | None, as_json: bool) -> None:
    """The deployment at a glance, from each host's drift watch: checks, units,
    release, last deploy (in sync with PROFILE or not), certificate, last backup,
    egress denials.

    Exit 0 when nothing needs attention, 1 when something does (each reason is
    printed).
    """
    from selfhost.status import render
    from selfhost.status import status as run_status

    result = run_status(profile, inventory=inventory, sandbox=sandbox_name)
    click.echo(json.dumps(result.as_json(), indent=2) if as_json else render(result))
    if not result.ok:
        ctx.exit(int(ExitCode.DIFFERENCE))
