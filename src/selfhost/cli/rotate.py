"""rotate."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from selfhost.cli.deploy import _ENGINE, _confirm, _reporter
from selfhost.cli.options import FILE, INVENTORY, ask_passphrase, sandbox_option
from selfhost.envvars import KEY_FILE_ENV


def _ask_hidden(prompt: str) -> str:
    return str(click.prompt(prompt, hide_input=True, default="", show_default=False))


@click.command()
@click.argument("profile", type=FILE)
@click.option("--secret", "names", metavar="NAME", multiple=True,
              help="A secret to rotate (repeatable); a third-party key's new value comes "
              "from SELFHOST_<NAME> or a hidden prompt.")
@click.option("--all", "every", is_flag=True,
              help="Every generated secret: database and cache passwords, the app's "
              "secret key, the backup key.")
@INVENTORY
@sandbox_option("Rotate on the guests of this sandbox, in the profile's host order.")
@click.option("--yes", is_flag=True, help="Do not ask before rotating.")
@_ENGINE
@click.option("--key-file", type=FILE, envvar=KEY_FILE_ENV, default=None,
              help="Key file of the secrets (else SELFHOST_PASSPHRASE or a prompt).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the rotated names and each step's changes as JSON at the end.")
def rotate(*, profile: Path, names: tuple[str, ...], every: bool, inventory: Path | None,
           sandbox_name: str | None, yes: bool, engine: str | None, key_file: Path | None,
           as_json: bool) -> None:
    """New values for PROFILE's secrets, switched on the hosts while the app serves.

    The secrets file gets the new values only once every host runs on them; a run
    cut in between is finished by running rotate again (exit 4 names the step).
    """
    from selfhost.rotation import RotateOptions
    from selfhost.rotation import rotate as run_rotate

    passphrase = ask_passphrase(profile, key_file)
    options = RotateOptions(names=names, all=every, inventory=inventory,
                            sandbox=sandbox_name, yes=yes, engine=engine,
                            passphrase=passphrase, key_file=key_file)
    say = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    result = run_rotate(profile, options, reporter=None if as_json else _reporter,
                        confirm=_confirm(), ask=_ask_hidden if sys.stdin.isatty() else None,
                        say=say)
    if as_json:
        click.echo(json.dumps({
            "rotated": result.rotated, "resumed": result.resumed,
            "steps": {step: {host: stats.changed for host, stats in hosts.items()}
                      for step, hosts in result.steps.items()},
        }, indent=2))
