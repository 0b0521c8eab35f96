"""sandbox up/down/list."""

from __future__ import annotations

import click


@click.group()
def sandbox() -> None:
    """Real Debian target hosts (systemd-nspawn guests) on this machine."""
