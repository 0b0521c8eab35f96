"""upgrade and rollback: a signed release over the running one, and back."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import click

from selfhost.cli.options import FILE, INVENTORY, ask_passphrase, sandbox_option
from selfhost.envvars import KEY_FILE_ENV

_PROFILE = click.argument("profile", type=FILE)
_KEY_FILE = click.option("--key-file", type=FILE, envvar=KEY_FILE_ENV, default=None,
                         help="Key file of the secrets (else SELFHOST_PASSPHRASE or a prompt).")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")



def _step(as_json: bool) -> Callable[[str], None]:
    def say(text: str) -> None:
        click.echo(f"==> {text}", err=as_json)
    return say


@click.command()
@_PROFILE
@click.option("--release", "release_file", type=FILE, required=True,
              help="The signed release tarball to upgrade to.")
@click.option("--check", is_flag=True,
              help="Preflight only: show what the upgrade would do and any subprocessor "
                   "change; change nothing.")
@click.option("--skip-verify", is_flag=True,
              help="Do not require `verify` to pass before the upgrade.")
@INVENTORY
@sandbox_option("The guests of this sandbox, in the profile's host order.")
@_KEY_FILE
@_JSON
def upgrade(*, profile: Path, release_file: Path, check: bool, skip_verify: bool,
            inventory: Path | None, sandbox_name: str | None, key_file: Path | None,
            as_json: bool) -> None:
    """Upgrade to a signed release: preflight, pre-upgrade dump, migrations once, app
    hosts switched one at a time; any failure rolls back on its own (exit 4)."""
    from selfhost.upgrade.service import UpgradeOptions
    from selfhost.upgrade.service import upgrade as run_upgrade

    options = UpgradeOptions(release=release_file, inventory=inventory, sandbox=sandbox_name,
                             check=check, skip_verify=skip_verify, key_file=key_file,
                             passphrase=ask_passphrase(profile, key_file))
    result = run_upgrade(profile, options, step=_step(as_json))
    if as_json:
        click.echo(json.dumps({"from": result.from_version, "to": result.to_version,
                               "check": result.check, "resumed": result.resumed,
                               "migrations": result.migrations, "steps": result.steps,
                               "subprocessors": result.subprocessors},
                              indent=2))
        return
    if check:
        click.echo(f"would upgrade {result.from_version} -> {result.to_version}:")
        for line in result.steps:
            click.echo(f"  - {line}")
        click.echo("subprocessors, against the list recorded for the customer:")
        for line in result.subprocessors:
            click.echo(f"  {line}")


@click.command()
@_PROFILE
@click.option("--yes", is_flag=True, help="Do not ask before rolling back.")
@INVENTORY
@sandbox_option("The guests of this sandbox, in the profile's host order.")
@_KEY_FILE
@_JSON
def rollback(*, profile: Path, yes: bool, inventory: Path | None, sandbox_name: str | None,
             key_file: Path | None, as_json: bool) -> None:
    """Go back to the release that ran before the last upgrade (and its database, when
    that upgrade migrated it), after a confirmation."""
    from selfhost.upgrade.service import RollbackOptions
    from selfhost.upgrade.service import rollback as run_rollback

    options = RollbackOptions(inventory=inventory, sandbox=sandbox_name, yes=yes,
                              key_file=key_file, passphrase=ask_passphrase(profile, key_file))

    def ask(question: str) -> bool:
        return click.confirm(question, default=False)

    result = run_rollback(profile, options, confirm=ask if sys.stdin.isatty() else None,
                          step=_step(as_json))
    if as_json:
        click.echo(json.dumps({"from": result.from_version, "to": result.to_version,
                               "database_restored": result.database_restored}, indent=2))
    else:
        click.echo(f"rolled back from {result.from_version} to {result.to_version}"
                   + (" (database restored)" if result.database_restored else ""))
