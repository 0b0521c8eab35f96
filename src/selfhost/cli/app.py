"""The ``selfhost`` command group and the one place errors become exit codes."""

from __future__ import annotations

import sys
from typing import Any

import click

from selfhost import __version__
from selfhost.cli.commands import ALL
from selfhost.errors import ExitCode, SelfhostError


class _Main(click.Group):
    """Turns every :class:`SelfhostError` into its message and exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SelfhostError as exc:
            click.echo(f"error: {exc.message}" if "\n" not in exc.message else exc.message,
                       err=True)
            ctx.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(int(ExitCode.INTERRUPTED))


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="selfhost")
def main() -> None:
    """Deploy backend.chat on your own Debian hosts, and prove which third
    parties receive personal data.

    \b
    Exit codes: 0 ok; 1 difference found or checks failed; 2 invalid input;
    3 missing prerequisite; 4 deployment failed; 5 secrets cannot be opened;
    6 declined confirmation; 130 interrupted.
    """


for _command in ALL:
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
