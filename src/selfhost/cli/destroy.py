"""destroy."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from selfhost.cli.deploy import _ENGINE
from selfhost.cli.options import INVENTORY, sandbox_option
from selfhost.envvars import SIGN_KEY_ENV

if TYPE_CHECKING:
    from selfhost.deploy.progress import Reporter
    from selfhost.deploy.redact import Redactor
    from selfhost.destroy.service import DestroyResult


def _reporter(redactor: Redactor) -> Reporter:
    from selfhost.deploy.progress import reporter_for

    return reporter_for(sys.stderr, redactor)


def _ask(question: str) -> str:
    return str(click.prompt(question, default="", show_default=False))


def _as_json(result: DestroyResult) -> str:
    return json.dumps({
        "customer_id": result.customer_id,
        "destroyed": result.already is None,
        "message": result.already,
        "hosts": result.hosts,
        "final_backup_dir": str(result.backup_dir) if result.backup_dir else None,
        "final_backups": {h: [str(p) for p in ps] for h, ps in result.backups.items()},
        "retired_record": str(result.retired_record) if result.retired_record else None,
        "archive_entry": result.archive_entry,
    }, indent=2)


@click.command()
@click.argument("profile", type=click.Path(path_type=Path, dir_okay=False))
@INVENTORY
@sandbox_option("The hosts are the guests of this sandbox, in the profile's host order.")
@click.option("--no-backup", is_flag=True,
              help="Do not take the final backup first (its data is then gone).")
@click.option("--yes-i-really-mean-it", "confirmed", is_flag=True,
              help="Do not ask to type the customer id.")
@click.option("--sign-key", type=click.Path(path_type=Path, dir_okay=False),
              envvar=SIGN_KEY_ENV, default=None,
              help="The key that signs the subprocessor archive's retirement entry.")
@_ENGINE
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def destroy(*, profile: Path, inventory: Path | None, sandbox_name: str | None,
            no_backup: bool, confirmed: bool, sign_key: Path | None, engine: str | None,
            as_json: bool) -> None:
    """Remove everything selfhost put on the profile's hosts, after a final backup.

    Asks to type the customer id unless --yes-i-really-mean-it (exit 6 when it is
    not typed: nothing is removed). A second destroy does nothing (exit 0).
    """
    from selfhost.destroy import DestroyOptions
    from selfhost.destroy import destroy as run_destroy

    say = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    options = DestroyOptions(inventory=inventory, sandbox=sandbox_name, backup=not no_backup,
                             confirmed=confirmed, engine=engine, sign_key=sign_key)
    result = run_destroy(profile, options, ask=_ask if sys.stdin.isatty() else None,
                         reporter=_reporter, say=say)
    if as_json:
        click.echo(_as_json(result))
        return
    if result.already is not None:
        click.echo(result.already)
        return
    click.echo(f"Destroyed the deployment of {result.customer_id} on "
               f"{', '.join(result.hosts)} in {result.seconds:.0f} s.")
    for host, files in result.backups.items():
        for path in files:
            click.echo(f"Final backup of {host}: {path}")
    if result.backup_dir is None:
        click.echo("No final backup was taken.")
    click.echo(f"Retired deployment record: {result.retired_record}")
    if result.archive_entry is not None:
        click.echo(f"Subprocessor archive: retirement recorded as entry {result.archive_entry}")
