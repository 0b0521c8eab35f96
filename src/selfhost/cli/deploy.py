"""deploy and demo."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from selfhost.cli.options import INVENTORY, ask_passphrase, sandbox_option
from selfhost.deploy.engine import ENGINE_ENV, ENGINES
from selfhost.envvars import KEY_FILE_ENV, SIGN_KEY_ENV
from selfhost.errors import ChecksFailed
from selfhost.paths import DEFAULT_PRESET, preset_names
from selfhost.sandbox.rootfs import DEFAULT_RELEASE, RELEASES

if TYPE_CHECKING:
    from selfhost.deploy.progress import Reporter
    from selfhost.deploy.redact import Redactor
    from selfhost.deploy.service import Confirm, DeployResult


def _reporter(redactor: Redactor) -> Reporter:
    from selfhost.deploy.progress import reporter_for

    return reporter_for(sys.stdout, redactor)


def _ask(question: str) -> bool:
    return click.confirm(question, default=False)


def _confirm() -> Confirm | None:
    # Without a terminal nobody can answer: deploy then fails unless --yes.
    return _ask if sys.stdin.isatty() else None


def _summary(result: DeployResult) -> None:
    from rich.console import Console

    from selfhost.deploy.progress import summary_table

    Console(file=sys.stdout, force_terminal=sys.stdout.isatty()).print(
        summary_table(result.stats, result.seconds, check=result.check))
    if result.record_path is not None:
        click.echo(f"Deployment record: {result.record_path}")



_ENGINE = click.option(
    "--engine", type=click.Choice(ENGINES), envvar=ENGINE_ENV, default=None,
    help=f"Run Ansible with Mitogen (default, faster) or plain ({ENGINE_ENV}).")




@click.command()
@click.argument("profile", type=click.Path(path_type=Path, dir_okay=False))
@INVENTORY
@sandbox_option("Deploy onto the guests of this sandbox, in the profile's host order.")
@click.option("--check", is_flag=True,
              help="Dry run with diff; also shows the subprocessor change.")
@click.option("--limit", metavar="HOSTS", default=None,
              help="Only these hosts (an Ansible pattern); no deployment record is kept.")
@click.option("--yes", is_flag=True,
              help="Do not ask before a deploy that changes the subprocessor list, nor "
              "before --prune removes something.")
@click.option("--prune", is_flag=True,
              help="Then remove the components the profile no longer uses (asks, naming "
              "each; a database's or cache's data is archived on its host first).")
@click.option("--override-notice", metavar="REASON", default=None,
              help="Deploy a subprocessor change before its notice is effective; the "
              "reason is recorded, signed, in the subprocessor archive.")
@click.option("--sign-key", type=click.Path(path_type=Path, dir_okay=False),
              envvar=SIGN_KEY_ENV, default=None,
              help="With --override-notice: the key that signs the archive entry.")
@_ENGINE
@click.option("--key-file", type=click.Path(path_type=Path, dir_okay=False),
              envvar=KEY_FILE_ENV, default=None,
              help="Key file of the secrets (else SELFHOST_PASSPHRASE or a prompt).")
@click.option("--keep-artifacts", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Keep the run's ansible-runner artifacts in this directory "
              "(only when no secret is found in them), for `support-bundle --artifacts`.")
def deploy(*, profile: Path, inventory: Path | None, sandbox_name: str | None, check: bool,
           limit: str | None, yes: bool, prune: bool, override_notice: str | None,
           sign_key: Path | None, engine: str | None, key_file: Path | None,
           keep_artifacts: Path | None) -> None:
    """Deploy a profile onto its hosts (exit 4 names the failed host and task)."""
    from selfhost.deploy import DeployOptions
    from selfhost.deploy import deploy as run_deploy

    passphrase = ask_passphrase(profile, key_file)
    options = DeployOptions(inventory=inventory, sandbox=sandbox_name, check=check,
                            limit=limit, yes=yes, engine=engine, key_file=key_file,
                            passphrase=passphrase, override_notice=override_notice,
                            sign_key=sign_key, prune=prune, keep_artifacts=keep_artifacts)
    result = run_deploy(profile, options, reporter=_reporter, confirm=_confirm(),
                        say=click.echo)
    _summary(result)


@click.command()
@click.option("--preset", type=click.Choice(preset_names()), default=DEFAULT_PRESET,
              show_default=True, help="The preset to deploy.")
@click.option("--release", type=click.Choice(RELEASES), default=DEFAULT_RELEASE,
              show_default=True, help="Debian release of the sandbox guests.")
@click.option("--workdir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("selfhost-demo"), show_default=True,
              help="Where the profile, secrets, passphrase and lists are written.")
def demo(*, preset: str, release: str, workdir: Path) -> None:
    """Sandbox hosts, a preset's profile, its deployment and its subprocessor list."""
    from selfhost.verify import summary as verify_summary
    from selfhost.workflows.demo import run_demo

    result = run_demo(preset, release, workdir, reporter=_reporter, say=click.echo)
    _summary(result.deployment)
    click.echo(f"\nProfile:            {result.profile_path}")
    click.echo(f"Secrets:            {result.secrets_path}")
    click.echo(f"Passphrase (0600):  {result.passphrase_file}")
    for name, address in result.guests.items():
        click.echo(f"Host {name}: {address}  (selfhost sandbox, name {result.sandbox})")
    if result.deployment.record_path is not None:
        click.echo(f"Deployment record:  {result.deployment.record_path}")
    checks = result.verification
    click.echo(f"Verification:       {len(checks.results) - len(checks.failures)}/"
               f"{len(checks.results)} checks passed; report {result.verify_report}")
    for fmt, path in result.lists.items():
        click.echo(f"Subprocessors ({fmt}): {path}")
    if not checks.ok:
        click.echo(verify_summary(checks))
        raise ChecksFailed("the deployed hosts do not match the profile (see above)")
