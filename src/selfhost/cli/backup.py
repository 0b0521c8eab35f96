"""backup (create, list, drill) and restore."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from selfhost.cli.options import FILE, INVENTORY, ask_passphrase, sandbox_option
from selfhost.envvars import KEY_FILE_ENV
from selfhost.errors import ChecksFailed
from selfhost.sandbox.rootfs import DEFAULT_RELEASE, RELEASES

_DIR = click.Path(path_type=Path, file_okay=False)
_PROFILE = click.argument("profile", type=FILE)
_KEY_FILE = click.option("--key-file", type=FILE, envvar=KEY_FILE_ENV, default=None,
                         help="Key file of the secrets (else SELFHOST_PASSPHRASE or a prompt).")
_OUTPUT = click.option("--output", type=_DIR, default=None,
                       help="Directory of the archives (default: .selfhost/<customer "
                       "id>/backups beside the profile).")



def _say(line: str) -> None:
    click.echo(line, err=True)


class _BackupGroup(click.Group):
    """``selfhost backup PROFILE`` makes a backup; ``list`` and ``drill`` are commands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["create", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_BackupGroup)
def backup() -> None:
    """Encrypted backups: `selfhost backup PROFILE` makes one (the same as `backup
    create`); `list` shows them, `drill` proves the latest restores.

    \b
    Exit codes: 2 invalid input or a damaged, altered or other customer's archive;
    4 a host command failed; 5 the secrets (or the backup key) do not open it.
    """


@backup.command("create")
@_PROFILE
@_OUTPUT
@INVENTORY
@sandbox_option("The hosts are the guests of this sandbox.")
@_KEY_FILE
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def create(*, profile: Path, output: Path | None, inventory: Path | None,
           sandbox_name: str | None, key_file: Path | None, as_json: bool) -> None:
    """Back up the database, host configuration, records and secrets file of PROFILE's
    deployment into one encrypted archive on this machine."""
    from selfhost.backup.service import create as run_create

    result = run_create(profile, output=output, sandbox=sandbox_name, inventory=inventory,
                        passphrase=ask_passphrase(profile, key_file), key_file=key_file,
                        say=_say)
    if as_json:
        click.echo(json.dumps({"path": str(result.path), "bytes": result.bytes,
                               "database_bytes": result.database_bytes,
                               "seconds": round(result.seconds, 2),
                               "manifest": result.manifest.model_dump(mode="json")}, indent=2))
        return
    click.echo(f"Backup: {result.path} ({result.bytes / (1 << 20):.1f} MiB, database "
               f"{result.database_bytes / (1 << 20):.1f} MiB, {len(result.manifest.members)} "
               f"members, {result.seconds:.1f} s)")


@backup.command("list")
@_PROFILE
@_OUTPUT
@INVENTORY
@sandbox_option("The hosts are the guests of this sandbox.")
@click.option("--no-hosts", is_flag=True, help="Only the archives on this machine.")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def list_command(*, profile: Path, output: Path | None, inventory: Path | None,
                 sandbox_name: str | None, no_hosts: bool, as_json: bool) -> None:
    """The archives of PROFILE on this machine and the daily dumps on its database host."""
    from selfhost.backup.service import list_backups

    found = list_backups(profile, output=output, sandbox=sandbox_name, inventory=inventory,
                         hosts=not no_hosts)
    if as_json:
        click.echo(json.dumps([{"kind": b.kind, "location": b.location, "created": b.created,
                                "bytes": b.bytes} for b in found], indent=2))
        return
    if not found:
        click.echo("no backups")
    for item in found:
        click.echo(f"{item.created}  {item.kind:<7}  {item.bytes / (1 << 20):>9.1f} MiB  "
                   f"{item.location}")


def _reporter() -> Any:
    from selfhost.deploy.progress import reporter_for

    return lambda redactor: reporter_for(sys.stderr, redactor)


@backup.command("drill")
@_PROFILE
@click.option("--backup", "backup_file", type=FILE, default=None,
              help="This archive instead of the latest one.")
@_OUTPUT
@click.option("--release", type=click.Choice(RELEASES), default=DEFAULT_RELEASE,
              show_default=True, help="Debian release of the throwaway guest(s).")
@_KEY_FILE
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def drill(*, profile: Path, backup_file: Path | None, output: Path | None, release: str,
          key_file: Path | None, as_json: bool) -> None:
    """Restore the latest backup onto a throwaway sandbox, verify it, read the canary
    rows, report time and the backup's age, and remove the sandbox (exit 1: verify failed)."""
    from selfhost.workflows.restore import drill as run_drill

    result = run_drill(profile, backup=backup_file, output=output, release=release,
                       passphrase=ask_passphrase(profile, key_file), key_file=key_file,
                       reporter=_reporter(), say=_say)
    checks = result.restore.verification
    if as_json:
        click.echo(json.dumps({"backup": str(result.backup), "age_seconds": result.age_seconds,
                               "seconds": round(result.seconds, 2),
                               "phases": {k: round(v, 2) for k, v in
                                          result.restore.phases.items()},
                               "checks": len(checks.results), "failed": len(checks.failures),
                               "canary": result.canary}, indent=2))
        return
    click.echo(f"Drill of {result.backup}: restored and verified in {result.seconds:.0f} s; "
               f"the backup is {result.age_seconds / 3600:.1f} h old")
    click.echo(f"Verification: {len(checks.results)} checks passed")
    if result.canary is not None:
        click.echo(f"Canary rows read back: {len(result.canary)}")


@click.command()
@_PROFILE
@click.option("--backup", "backup_file", type=FILE, required=True,
              help="The archive written by `selfhost backup`.")
@sandbox_option("The hosts are the guests of this sandbox.")
@INVENTORY
@_KEY_FILE
def restore(*, profile: Path, backup_file: Path, sandbox_name: str | None,
            inventory: Path | None, key_file: Path | None) -> None:
    """Restore a backup onto fresh hosts: check the archive, deploy, restore the
    database, verify (exit 1: verify failed; 2/5: archive refused, nothing changed)."""
    from selfhost.verify import summary
    from selfhost.workflows.restore import restore as run_restore

    result = run_restore(profile, backup_file, sandbox_name=sandbox_name, inventory=inventory,
                         passphrase=ask_passphrase(profile, key_file), key_file=key_file,
                         reporter=_reporter(), say=_say)
    click.echo(summary(result.verification))
    click.echo(f"Restored {backup_file} (made {result.manifest.created}) in "
               f"{result.seconds:.0f} s")
    if not result.verification.ok:
        raise ChecksFailed("the restored hosts do not match the profile (see above)")
