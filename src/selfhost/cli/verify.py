"""verify."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from selfhost.cli.options import FILE, INVENTORY, sandbox_option
from selfhost.errors import ExitCode

if TYPE_CHECKING:
    from selfhost.verify.contract import AnyCheck, Outcome



def _progress(check: AnyCheck, outcome: Outcome) -> None:
    click.echo("." if outcome.passed else "F", nl=False, err=True)


@click.command()
@click.argument("profile", type=FILE)
@INVENTORY
@sandbox_option("Check the guests of this sandbox (as `deploy --sandbox` mapped them).")
@click.option("--junit", type=FILE, default=None, help="Write a JUnit XML report here.")
@click.option("--json", "json_path", type=FILE, default=None,
              help="Write a JSON report here.")
@click.pass_context
def verify(ctx: click.Context, *, profile: Path, inventory: Path | None,
           sandbox_name: str | None, junit: Path | None, json_path: Path | None) -> None:
    """Check the live hosts against PROFILE's Plan: one test per check and host.

    Exit 0 when every check passes, 1 when one fails (each failure says what was
    expected, what was found and the fix).
    """
    from selfhost.verify import summary
    from selfhost.verify import verify as run_verify

    result = run_verify(profile, inventory=inventory, sandbox=sandbox_name, junit=junit,
                        json_path=json_path, on_result=_progress)
    click.echo("", err=True)
    click.echo(summary(result))
    if not result.ok:
        ctx.exit(int(ExitCode.DIFFERENCE))
