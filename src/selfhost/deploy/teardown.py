"""Running ``ansible/teardown.yml``: removing components from hosts.

One runner for both removals: ``deploy --prune`` (the components a changed
profile no longer uses, their data archived on the host first) and ``selfhost
destroy`` (every component of every host, then the base system and the Debian
packages selfhost installed). What goes where is a mapping host -> components,
taken from the deployment record; paths and names come from the Plan's layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from selfhost.deploy.engine import Engine
from selfhost.deploy.events import HostStats
from selfhost.deploy.progress import Reporter
from selfhost.deploy.redact import Redactor
from selfhost.deploy.runner import RunRequest, run_shown
from selfhost.errors import PrerequisiteMissing
from selfhost.paths import ANSIBLE_DIR
from selfhost.plan import Plan
from selfhost.targets import Target

PLAYBOOK = "teardown.yml"
#: components whose data a prune archives before removing them
WITH_DATA = ("postgresql", "redis")


@dataclass(frozen=True)
class Removal:
    """What to remove: host name -> components (every one of them for a destroy)."""

    components: dict[str, list[str]]
    #: destroy: also the base system and the packages selfhost installed
    full: bool = False
    #: destroy: the controller directory the final backup is fetched into (None: none)
    fetch_dir: Path | None = None
    #: names this run's archives on the hosts (UTC, ``YYYYmmddTHHMMSSZ``)
    stamp: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))

    def archives(self, plan: Plan) -> dict[str, list[str]]:
        """Host -> the on-host archive files a prune writes for its removed data."""
        directory = PurePosixPath(plan.layout.prune_archive_dir)
        names = {"postgresql": f"{plan.database.name}-{self.stamp}.dump",
                 "redis": f"redis-{self.stamp}.rdb"}
        return {host: [str(directory / names[c]) for c in comps if c in WITH_DATA]
                for host, comps in self.components.items()
                if any(c in WITH_DATA for c in comps)}


@dataclass
class RemovalResult:
    stats: dict[str, HostStats]
    seconds: float


def playbook_path() -> Path:
    path = ANSIBLE_DIR / PLAYBOOK
    if not path.is_file():
        raise PrerequisiteMissing(f"the playbook {path} is missing (reinstall selfhost)")
    return path


def remove(target: Target, removal: Removal, *, engine: Engine, timeout: int,
           reporter: Callable[[Redactor], Reporter] | None = None) -> RemovalResult:
    """Run the teardown playbook on ``target``'s hosts; raises like a deploy does
    (:class:`~selfhost.errors.DeployFailed` naming host and task)."""
    extravars = {
        "selfhost_plan": target.plan.model_dump(mode="json"),
        "selfhost_teardown": removal.components,
        "selfhost_teardown_full": removal.full,
        "selfhost_teardown_fetch_dir": str(removal.fetch_dir) if removal.fetch_dir else "",
        "selfhost_teardown_stamp": removal.stamp,
    }
    # The teardown handles no secret: the redactor has nothing to hide, and the runner
    # still scans its files for the values it was given (none).
    redactor = Redactor({})
    request = RunRequest(playbook=playbook_path(), inventory=target.inventory,
                         extravars=extravars, secret_env={}, engine=engine, timeout=timeout)
    outcome = run_shown(request, redactor, reporter)
    return RemovalResult(stats=outcome.stats, seconds=outcome.seconds)
