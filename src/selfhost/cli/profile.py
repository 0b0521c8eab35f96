"""init, validate and plan."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from selfhost.envvars import KEY_FILE_ENV
from selfhost.errors import ValidationFailed

if TYPE_CHECKING:
    from selfhost.questions import Question

_PROFILE = click.argument("profile", type=click.Path(path_type=Path, dir_okay=False))


def _prompt(question: Question, default: Any, error: str | None) -> Any:
    """Ask one question on the terminal; the library validates the answer."""
    if error:
        click.secho(f"  {error}", fg="red", err=True)
    if question.kind == "bool":
        return click.confirm(question.prompt, default=default)
    if question.hidden:
        return click.prompt(question.prompt, hide_input=True)
    kind: Any = str
    if question.kind == "choice":
        kind = click.Choice(question.choices)
    elif question.kind == "int":
        kind = int
    if question.kind == "list":
        default = ", ".join(default or ())
    if question.optional or (question.kind == "list" and not default):
        return click.prompt(question.prompt, default="", show_default=False, type=kind)
    return click.prompt(question.prompt, default=default, type=kind)


def _ask_passphrase(new: bool) -> str:
    value: str = click.prompt("Passphrase for the secrets file", hide_input=True,
                              confirmation_prompt=new)
    return value


@click.command()
@click.option("--preset", metavar="NAME",
              help="Start from a preset in profiles/ (air-gapped, eu-anthropic, us-openai, "
              "split, external-db).")
@click.option("--answers", "answers_file", type=click.Path(path_type=Path, dir_okay=False),
              help="A YAML file of answers, shaped like a profile; overrides the preset.")
@click.option("--set", "sets", multiple=True, metavar="KEY.PATH=VALUE",
              help="Set one answer (repeatable); overrides the answers file. Values are "
              "YAML: --set ai.models=[gpt-4o]. Never a secret: use SELFHOST_<NAME>.")
@click.option("--interactive/--non-interactive", default=None,
              help="Ask for missing answers, or fail naming them. Default: ask when "
              "standard input is a terminal.")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False),
              default=Path("profile.yaml"), show_default=True,
              help="Profile to write; the secrets go beside it (.secrets).")
@click.option("--force", is_flag=True,
              help="Overwrite an existing profile; its stored secrets are kept.")
@click.option("--key-file", type=click.Path(path_type=Path, dir_okay=False),
              envvar=KEY_FILE_ENV,
              help="Encrypt the secrets with this key file instead of a passphrase "
              "(SELFHOST_PASSPHRASE).")
def init(*, preset: str | None, answers_file: Path | None, sets: tuple[str, ...],
         interactive: bool | None, output: Path, force: bool, key_file: Path | None) -> None:
    """Answer the data-sovereignty questions and write a profile and its secrets.

    Precedence: --set, then --answers, then --preset, then the questions.
    Third-party keys come from SELFHOST_<NAME> variables (e.g.
    SELFHOST_OPENAI_API_KEY) or a hidden prompt; all other secrets are generated.
    """
    from selfhost.init import InitRequest, run_init

    if interactive is None:
        interactive = sys.stdin.isatty()
    request = InitRequest(output=output, preset=preset, answers_file=answers_file, sets=sets,
                          force=force, key_file=key_file)
    result = run_init(request, _prompt if interactive else None,
                      _ask_passphrase if interactive else None)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"Wrote {result.profile_path} and {result.secrets_path} (mode 0600).")
    for label, names in (("generated", result.generated), ("supplied", result.supplied),
                         ("kept", result.kept), ("removed, no longer needed", result.removed)):
        if names:
            click.echo(f"  secrets {label}: {', '.join(names)}")


@click.command()
@_PROFILE
def validate(profile: Path) -> None:
    """Check a profile and report every problem with file, line and fix.

    Exit 0 when valid (warnings, such as a certificate expiring within 30 days,
    are printed); exit 2 with one FILE:LINE: field: message line per problem.
    """
    from selfhost.plan import plan as make_plan
    from selfhost.plan_text import validity_line
    from selfhost.profile_io import check_profile

    check = check_profile(profile)
    for warning in check.warnings:
        click.echo(warning.render(), err=True)
    if check.profile is None or check.errors:
        raise ValidationFailed([f.render() for f in check.errors])
    click.echo(validity_line(profile, make_plan(check.profile)))


@click.command()
@_PROFILE
@click.option("--json", "as_json", is_flag=True, help="Print the Plan as stable JSON.")
def plan(profile: Path, as_json: bool) -> None:
    """Show what a profile would deploy and which third parties receive data."""
    from selfhost.plan import plan as make_plan
    from selfhost.plan_text import render_plan
    from selfhost.profile_io import load_profile

    result = make_plan(load_profile(profile))
    click.echo(result.to_json() if as_json else render_plan(result), nl=False)
