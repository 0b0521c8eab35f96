"""The ``selfhost`` command group and the one place errors become exit codes.

The command modules import their services inside the commands, so ``--help``
and option errors never pay for pydantic, Ansible, cryptography or rich.
"""

from __future__ import annotations

import sys
from typing import Any

import click

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


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from selfhost import __version__

    click.echo(f"selfhost, version {__version__}")
    ctx.exit()


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_version, help="Show the version and exit.")
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
