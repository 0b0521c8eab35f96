"""init, validate and plan."""

from __future__ import annotations

import click


@click.command()
def init() -> None:
    """Answer the data-sovereignty questions and write a profile and its secrets."""


@click.command()
def validate() -> None:
    """Check a profile and report every problem with file, line and fix."""


@click.command()
def plan() -> None:
    """Show what a profile would deploy and which third parties receive data."""
