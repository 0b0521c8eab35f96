"""How the subprocessor list of a new Plan differs from the last deployment's.

Each real deploy keeps the list it deployed (JSON) beside the deployment record;
the next one compares the new Plan's list with it through the same change-notice
logic as ``selfhost subprocessors diff``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from selfhost.plan import Plan
from selfhost.subprocessors.diff import ChangeNotice
from selfhost.subprocessors.diff import compare as compare_lists
from selfhost.subprocessors.document import SubprocessorList, build_document


@dataclass(frozen=True)
class SubprocessorDelta:
    #: None before the first deployment: there is no earlier list to change
    notice: ChangeNotice | None

    @property
    def changes_list(self) -> bool:
        return self.notice is not None and self.notice.has_changes

    def lines(self) -> list[str]:
        """One line per added, removed or changed subprocessor."""
        notice = self.notice
        if notice is None:
            return ["subprocessors: first deployment, no earlier list to compare with"]
        if not notice.has_changes:
            return ["subprocessors: unchanged since the last deployment"]
        return notice.lines()


def compare(previous: SubprocessorList | None, plan: Plan, on: date) -> SubprocessorDelta:
    if previous is None:
        return SubprocessorDelta(notice=None)
    return SubprocessorDelta(notice=compare_lists(previous, build_document(plan, on=on), on))
