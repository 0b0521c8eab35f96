"""``deploy --prune``: removing what a changed profile no longer uses.

A deploy alone never removes anything (it names the leftovers); with ``--prune``
it asks, naming each component and host, and once the new deployment is in place
removes them: a database or cache has its data archived on its host first
(``HostLayout.prune_archive_dir``), and the output names each archive.
"""

from __future__ import annotations

from collections.abc import Callable

from selfhost.deploy.engine import Engine
from selfhost.deploy.progress import Reporter
from selfhost.deploy.redact import Redactor
from selfhost.deploy.teardown import WITH_DATA, Removal, remove
from selfhost.errors import Aborted
from selfhost.plan import Plan
from selfhost.targets import Target


def items(to_prune: dict[str, list[str]], plan: Plan) -> list[str]:
    """One line per component to remove, saying what happens to its data."""
    archive = plan.layout.prune_archive_dir
    return [f"{host}: {component}" + (f" (its data is archived first in {archive})"
                                      if component in WITH_DATA else "")
            for host, comps in sorted(to_prune.items()) for component in comps]


def confirm(to_prune: dict[str, list[str]], plan: Plan, *, check: bool, yes: bool,
            confirm: Callable[[str], bool] | None) -> None:
    """Ask before anything runs; :class:`Aborted` (exit 6) when not confirmed."""
    if check or yes or not to_prune:
        return
    lines = items(to_prune, plan)
    if confirm is None:
        raise Aborted("--prune would remove " + "; ".join(lines) + ", and there is no "
                      "terminal to confirm it: pass --yes to remove them")
    if not confirm("After this deployment, --prune removes:\n  " + "\n  ".join(lines)
                   + "\nRemove them?"):
        raise Aborted("deployment cancelled: removing what the profile no longer uses "
                      "was not confirmed (nothing was changed)")


def run(target: Target, to_prune: dict[str, list[str]], *, engine: Engine, timeout: int,
        reporter: Callable[[Redactor], Reporter] | None,
        say: Callable[[str], None] | None) -> dict[str, list[str]]:
    """Remove ``to_prune``; returns host -> archives of removed data on that host."""
    if not to_prune:
        return {}
    removal = Removal(components=to_prune)
    remove(target, removal, engine=engine, timeout=timeout, reporter=reporter)
    archives = removal.archives(target.plan)
    if say is not None:
        for line in items(to_prune, target.plan):
            say(f"pruned {line.split(' (')[0]}")
        for host, files in sorted(archives.items()):
            for path in files:
                say(f"archived on {host}: {path}")
    return archives
