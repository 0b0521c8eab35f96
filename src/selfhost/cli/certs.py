"""certs."""

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
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def certs(ctx: click.Context, *, profile: Path, inventory: Path | None,
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
