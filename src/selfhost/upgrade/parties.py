"""The subprocessors an upgrade would change: by design, none.

An upgrade swaps the app release and nothing else: the hosts keep the wiring, the
egress allowlist and the firewall of the last deploy. So a profile whose
subprocessors differ from the list recorded for the customer (``subprocessors.json``
beside the deployment record, which ``selfhost deploy`` writes; before the first
deploy the archive's last published list, as the notice gate takes it) is a change
for ``selfhost deploy``, which goes through the notice gate. ``upgrade --check``
shows the difference; a real upgrade refuses it, and so does a rollback (it rewrites
every host's record from the profile, which would then name parties the hosts do not
wire).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from selfhost.deploy import record
from selfhost.errors import InvalidInput
from selfhost.plan import Plan
from selfhost.subprocessors import archive
from selfhost.subprocessors.diff import compare
from selfhost.subprocessors.document import SubprocessorList, build_document
from selfhost.subprocessors.publishing import as_list

NO_CHANGE = "no subprocessor change"


@dataclass(frozen=True)
class PartyChange:
    #: where the list compared with came from; None when none is recorded
    baseline: Path | None
    #: one line per subprocessor added (``+``), removed (``-``) or changed (``~``)
    lines: list[str]

    @property
    def changed(self) -> bool:
        """True when the upgrade cannot be sure it leaves the subprocessors as they are."""
        return self.baseline is None or bool(self.lines)

    def summary(self) -> list[str]:
        if self.baseline is None:
            return ["no subprocessor list is recorded for this customer (`selfhost deploy` "
                    "records one): the change cannot be shown"]
        return self.lines or [NO_CHANGE]


def difference(baseline: Path | None, recorded: SubprocessorList | None,
               now: SubprocessorList, on: date) -> PartyChange:
    """The change from the ``recorded`` list (read from ``baseline``) to ``now``."""
    if recorded is None:
        return PartyChange(None, [])
    return PartyChange(baseline, compare(recorded, now, on).lines())


def recorded_list(profile_path: Path, customer_id: str
                  ) -> tuple[Path | None, SubprocessorList | None]:
    """The list deployed last, else the last one published; (None, None) without either."""
    deployed_path = record.list_path(profile_path, customer_id)
    deployed = record.read_list(deployed_path)
    if deployed is not None:
        return deployed_path, deployed
    path = archive.archive_path(profile_path, customer_id)
    last = archive.last_list(archive.load(path))
    if last is None:
        return None, None
    return path, as_list(path, last, 0)


def of_profile(profile_path: Path, the_plan: Plan, on: date) -> PartyChange:
    """The change the profile's Plan makes to the customer's recorded list on ``on``."""
    baseline, recorded = recorded_list(profile_path, the_plan.customer.id)
    return difference(baseline, recorded, build_document(the_plan, on=on), on)


def refuse_changed(change: PartyChange) -> None:
    """:class:`InvalidInput` (exit 2, nothing changed) when the subprocessors change."""
    if not change.changed:
        return
    raise InvalidInput(
        "the profile's subprocessors differ from the list recorded for this customer ("
        + "; ".join(change.summary()) + "): an upgrade or a rollback only swaps the app "
        "release; run `selfhost deploy` first (it goes through the notice gate)")
