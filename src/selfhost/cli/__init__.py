"""The command line. Only this package imports click; nothing imports it."""

from selfhost.cli.app import main

__all__ = ["main"]
