"""keys generate: the Ed25519 key pair that signs subprocessor lists."""

from __future__ import annotations

from pathlib import Path

import click

from selfhost.subprocessors.files import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE


@click.group()
def keys() -> None:
    """Signing keys for subprocessor lists."""


@keys.command()
@click.option("--output-dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path(), help="Where to write both files (default: here).")
@click.option("--private-key", type=click.Path(path_type=Path, dir_okay=False),
              help=f"Private key path (default: OUTPUT_DIR/{PRIVATE_KEY_FILE}; mode 0600).")
@click.option("--public-key", type=click.Path(path_type=Path, dir_okay=False),
              help=f"Public key path (default: OUTPUT_DIR/{PUBLIC_KEY_FILE}).")
@click.option("--force", is_flag=True, help="Replace existing key files.")
def generate(output_dir: Path, private_key: Path | None, public_key: Path | None,
             force: bool) -> None:
    """Create an Ed25519 key pair (PEM)."""
    from selfhost.subprocessors.signing import generate_keys

    pair = generate_keys(private_key or output_dir / PRIVATE_KEY_FILE,
                         public_key or output_dir / PUBLIC_KEY_FILE, force=force)
    click.echo(f"private key: {pair.private_key} (keep it secret)")
    click.echo(f"public key:  {pair.public_key} (give it to whoever checks signatures)")
    click.echo(f"key id:      {pair.key_id}")
