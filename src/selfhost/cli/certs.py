"""certs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from selfhost.cli.deploy import _ENGINE, _confirm, _reporter
from selfhost.cli.options import FILE, INVENTORY, ask_passphrase, sandbox_option
from selfhost.envvars import KEY_FILE_ENV
from selfhost.errors import ExitCode


class _CertsGroup(click.Group):
    """``certs PROFILE`` lists (as it always did); ``certs rotate-ca PROFILE`` rotates."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_CertsGroup)
def certs() -> None:
    """The deployment's certificates: `certs PROFILE` lists them (same as `certs list`),
    `certs rotate-ca PROFILE` replaces the internal CA."""


@certs.command("list")
@click.argument("profile", type=FILE)
@INVENTORY
@sandbox_option("Read the guests of this sandbox (as `deploy --sandbox` mapped them).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def list_certs(ctx: click.Context, *, profile: Path, inventory: Path | None,
               sandbox_name: str | None, as_json: bool) -> None:
    """List every certificate of PROFILE's deployment, read from the hosts.

    The internal CA, each host's server certificate and the copies nginx, Redis
    and PostgreSQL serve, a provided chain and the ACME certificate (with
    certbot's renewal timer): subject, issuer and expiry. Exit 0 when all is well
    (certificates to renew within 30 days are marked WARN), 1 when one expired or
    expires within 7 days, a file is missing or a host cannot be read.
    """
    from selfhost import cert_inventory

    hosts = cert_inventory.certificates(profile, inventory=inventory, sandbox=sandbox_name)
    if as_json:
        click.echo(json.dumps(cert_inventory.to_json(hosts), indent=2, sort_keys=True))
    else:
        click.echo(cert_inventory.render(hosts))
    if cert_inventory.attention(hosts):
        ctx.exit(int(ExitCode.DIFFERENCE))


@certs.command("rotate-ca")
@click.argument("profile", type=FILE)
@INVENTORY
@sandbox_option("Rotate on the guests of this sandbox, in the profile's host order.")
@click.option("--yes", is_flag=True, help="Do not ask before rotating.")
@click.option("--stop-after", type=click.Choice(["add", "switch"]), default=None,
              help="Stop after this phase (run again to continue).")
@_ENGINE
@click.option("--key-file", type=FILE, envvar=KEY_FILE_ENV, default=None,
              help="Key file of the secrets (else SELFHOST_PASSPHRASE or a prompt).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the phases run, the CA fingerprints and each phase's changes "
              "as JSON at the end.")
def rotate_ca(*, profile: Path, inventory: Path | None, sandbox_name: str | None, yes: bool,
              stop_after: str | None, engine: str | None, key_file: Path | None,
              as_json: bool) -> None:
    """Replace PROFILE's internal CA while the app serves: add (hosts trust old and
    new CA), switch (server certificates from the new CA), finish (old CA dropped,
    its key removed from the secrets file).

    Each phase is stored once every host has it; an interrupted rotation resumes
    when run again (exit 4 names the phase).
    """
    from selfhost.ca_rotation import CaRotateOptions
    from selfhost.ca_rotation import rotate_ca as run

    passphrase = ask_passphrase(profile, key_file)
    options = CaRotateOptions(inventory=inventory, sandbox=sandbox_name, yes=yes,
                              engine=engine, passphrase=passphrase, key_file=key_file,
                              stop_after=stop_after)
    say = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    result = run(profile, options, reporter=None if as_json else _reporter,
                 confirm=_confirm(), say=say)
    if as_json:
        click.echo(json.dumps({
            "phases": result.phases, "resumed": result.resumed,
            "old_ca_sha256": result.old_ca, "new_ca_sha256": result.new_ca,
            "steps": {step: {host: stats.changed for host, stats in hosts.items()}
                      for step, hosts in result.steps.items()},
        }, indent=2))
