"""release build and release verify: signed release tarballs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from selfhost.cli.options import FILE
from selfhost.errors import ExitCode, SelfhostError

if TYPE_CHECKING:
    from selfhost.release import ReleaseManifest

_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def _summary(manifest: ReleaseManifest) -> dict[str, Any]:
    return {"name": manifest.name, "version": manifest.version,
            "payload_sha256": manifest.payload.sha256, "payload_size": manifest.payload.size,
            "upgrade_from": manifest.upgrade_from, "required_stops": manifest.required_stops,
            "migrations": [m.id for m in manifest.migrations],
            "health": manifest.health.model_dump(mode="json")}


def _echo_json(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


@click.group()
def release() -> None:
    """Signed release tarballs: build one, check one."""


@release.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--version", "version", required=True, metavar="V",
              help="The release's version (letters, digits and . + ~ _ -).")
@click.option("--sign-key", type=FILE, required=True,
              help="The vendor's Ed25519 private key (selfhost keys generate).")
@click.option("--output", type=FILE, default=None,
              help="The tarball to write (default: NAME-VERSION.tar.gz here).")
@_JSON
def build(directory: Path, version: str, sign_key: Path, output: Path | None,
          as_json: bool) -> None:
    """Pack DIRECTORY (with its selfhost-release.json) into a signed release."""
    from selfhost.release.build import build_release

    built = build_release(directory, version, sign_key, output)
    if as_json:
        _echo_json({"file": str(built.path), "sha256": built.sha256, "key_id": built.key_id,
                    **_summary(built.manifest)})
        return
    click.echo(f"{built.path}: {built.manifest.name} {built.manifest.version}, signed by "
               f"{built.key_id}")
    click.echo(f"sha256: {built.sha256}")


@release.command()
@click.argument("file", type=FILE)
@click.option("--trusted-key", "trusted_keys", type=FILE, multiple=True, required=True,
              help="A public key the release may be signed with (repeatable).")
@_JSON
def verify(file: Path, trusted_keys: tuple[Path, ...], as_json: bool) -> None:
    """Exit 0 when FILE is a release a trusted key signed, whose payload is as
    signed; 1 when it is not genuine; 2 when it is no fit release."""
    from selfhost.release import NotGenuine, ReleaseError, verify_release

    try:
        checked = verify_release(file, list(trusted_keys),
                                 trust_hint="pass the vendor's public key to --trusted-key")
    except ReleaseError as exc:
        code = ExitCode.DIFFERENCE if isinstance(exc, NotGenuine) else exc.exit_code
        if as_json:
            _echo_json({"file": str(file), "ok": False, "error": exc.message})
        raise SelfhostError(exc.message, exit_code=code) from None
    if as_json:
        _echo_json({"file": str(file), "ok": True, "sha256": checked.sha256,
                    "key_id": checked.key_id, "members": checked.members,
                    **_summary(checked.manifest)})
        return
    m = checked.manifest
    click.echo(f"{file}: {m.name} {m.version}, signed by {checked.key_id}; payload "
               f"sha256 {m.payload.sha256} ({checked.members} members) as signed")
