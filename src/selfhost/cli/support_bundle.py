"""support-bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from selfhost.cli.options import FILE, INVENTORY, ask_passphrase, sandbox_option
from selfhost.envvars import KEY_FILE_ENV
from selfhost.errors import ExitCode


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB"


def _listing(manifest: dict[str, Any]) -> str:
    """What the bundle holds, part by part, as the user reads it before it is written."""
    lines = [f"support bundle of {manifest['customer_id']} ({', '.join(manifest['hosts'])}), "
             f"journal since {manifest['since']}:"]
    for part in manifest["parts"]:
        masked = part["masked"]
        note = (f"  [masked: {', '.join(f'{k} x{v}' for k, v in masked.items())}]"
                if masked else "")
        lines.append(f"  {part['name']}  {_size(part['bytes'])}{note}")
    for name, why in manifest["omitted"].items():
        lines.append(f"  left out: {name} ({why})")
    for problem in manifest["problems"]:
        lines.append(f"  MISSING: {problem}")
    return "\n".join(lines)


@click.command("support-bundle")
@click.argument("profile", type=FILE)
@click.option("--since", default="24h", show_default=True, metavar="WHEN",
              help="Journal and proxy log from this long ago (30m, 24h, 7d) or this UTC "
              "time (2026-12-01T08:00:00Z).")
@click.option("--output", "-o", type=FILE, default=None,
              help="The archive to write (never overwritten); default "
              "support-bundle-CUSTOMER-TIME.tar.gz here.")
@INVENTORY
@sandbox_option("Read the guests of this sandbox (as `deploy --sandbox` mapped them).")
@click.option("--no-verify", is_flag=True, help="Do not run verify for the bundle's report.")
@click.option("--artifacts", type=click.Path(path_type=Path, file_okay=False, exists=True),
              multiple=True, help="A directory of `deploy --keep-artifacts`: its runs are "
              "summarised in the bundle (repeatable).")
@click.option("--dry-run", is_flag=True, help="List what the bundle would hold; write nothing.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the manifest as JSON on stdout (progress stays on stderr).")
@click.option("--key-file", type=FILE, envvar=KEY_FILE_ENV, default=None,
              help="Key file of the secrets (else SELFHOST_PASSPHRASE or a prompt).")
@click.pass_context
def support_bundle(ctx: click.Context, *, profile: Path, since: str, output: Path | None,
                   inventory: Path | None, sandbox_name: str | None, no_verify: bool,
                   artifacts: tuple[Path, ...], dry_run: bool, as_json: bool,
                   key_file: Path | None) -> None:
    """One archive of the deployment for the vendor's support, secrets redacted.

    \b
    Per host: the journal of the deployment's units since WHEN, its configs,
    package and release versions, the nft ruleset, the proxy's verdict counts;
    from here: verify's report, the deployment records and kept deploy runs.
    Every known secret value (in its encodings) and whatever looks like a key,
    token or password is masked before anything is written; secret files are
    never read. The contents are listed before the archive (0600) is written.

    Exit 0 when written, 1 when written without a part that could not be read
    (listed as MISSING), 2 invalid input, 5 secrets cannot be opened.
    """
    from selfhost.bundle import BundleOptions
    from selfhost.bundle import support_bundle as build

    def say(line: str) -> None:
        click.echo(line, err=True)

    def show(manifest: dict[str, Any]) -> None:
        if as_json:
            click.echo(json.dumps(manifest, indent=2, sort_keys=True))
        else:
            click.echo(_listing(manifest))

    options = BundleOptions(inventory=inventory, sandbox=sandbox_name, since=since,
                            output=output, verify=not no_verify, artifacts=artifacts,
                            dry_run=dry_run, key_file=key_file,
                            passphrase=ask_passphrase(profile, key_file))
    result = build(profile, options, say=say, show=show)
    if result.path is not None:
        say(f"wrote {result.path} (mode 0600, {len(result.manifest['parts'])} parts)")
    if not result.complete:
        if as_json:  # the listing with its MISSING lines went out as JSON
            for problem in result.manifest["problems"]:
                say(f"MISSING: {problem}")
        say("the bundle is incomplete: what could not be read is marked MISSING")
        ctx.exit(int(ExitCode.DIFFERENCE))
