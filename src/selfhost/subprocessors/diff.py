"""Change notices: what differs between two subprocessor lists, and when.

OLD and NEW are each a profile (YAML) or a list in its JSON form. The notice
names the subprocessors added, removed and changed (field by field), the date
the change may take effect (notice date + NEW's ``notice.days``) and the
objection deadline (notice date + NEW's ``notice.objection_days``).
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from selfhost import inputs, templating
from selfhost.errors import InvalidInput
from selfhost.i18n import DEFAULT, Lang
from selfhost.plan import plan
from selfhost.profile_io import load_profile
from selfhost.subprocessors.document import (
    Customer,
    Subprocessor,
    SubprocessorList,
    build_document,
    dump_json,
    from_json,
)

TEMPLATE = "change-notice.md.j2"
HTML_TEMPLATE = "change-notice.html.j2"


class _Notice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldChange(_Notice):
    #: dotted path inside the subprocessor entry, e.g. ``facts.data_location``
    field: str
    old: Any
    new: Any


class ChangedSubprocessor(_Notice):
    id: str
    name: str
    changes: list[FieldChange]


class ChangeNotice(_Notice):
    schema_version: Literal[1] = 1
    kind: Literal["selfhost-subprocessor-change-notice"] = "selfhost-subprocessor-change-notice"
    customer: Customer
    old_fingerprint: str
    new_fingerprint: str
    notice_date: date
    effective_date: date
    objection_deadline: date
    added: list[Subprocessor]
    removed: list[Subprocessor]
    changed: list[ChangedSubprocessor]

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def to_json(self) -> str:
        return dump_json(self.model_dump(mode="json"))

    def lines(self) -> list[str]:
        """One line per added, removed or changed subprocessor."""
        out = [f"+ {s.id} ({s.facts.name}): added" for s in self.added]
        out += [f"- {s.id} ({s.facts.name}): removed" for s in self.removed]
        for changed in self.changed:
            fields = ", ".join(f"{c.field}: {json.dumps(c.old)} -> {json.dumps(c.new)}"
                               for c in changed.changes)
            out.append(f"~ {changed.id} ({changed.name}): {fields}")
        return out

    def to_markdown(self, lang: Lang = DEFAULT) -> str:
        return templating.render(TEMPLATE, lang, notice=self)

    def to_html(self, seq: int, lang: Lang = DEFAULT) -> str:
        """The notice as a standalone page; ``seq`` is its archive entry."""
        return templating.render(HTML_TEMPLATE, lang, notice=self, seq=seq)


def load_list(path: Path, on: date) -> SubprocessorList:
    """A list from a JSON list file, or built from a profile as of ``on``."""
    try:
        text = inputs.read_text(path)
    except FileNotFoundError:
        raise InvalidInput(f"{path}: the file does not exist (give a profile or a list "
                           "written by selfhost subprocessors render --format json)") \
            from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read the file ({exc})") from None
    if text.lstrip().startswith("{"):
        return from_json(text, str(path))
    return build_document(plan(load_profile(path)), on=on)


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key in sorted(value):
            _flatten(value[key], f"{prefix}.{key}" if prefix else key, out)
    else:
        out[prefix] = value


def _fields(sub: Subprocessor) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # how it became active is the archive's record, not a change of the subprocessor
    _flatten(sub.model_dump(mode="json", exclude={"id", "activation"}), "", out)
    return out


def compare(old: SubprocessorList, new: SubprocessorList, notice_date: date) -> ChangeNotice:
    before = {s.id: s for s in old.subprocessors}
    after = {s.id: s for s in new.subprocessors}
    changed = []
    for sub_id in (i for i in after if i in before):
        a, b = _fields(before[sub_id]), _fields(after[sub_id])
        changes = [FieldChange(field=k, old=a.get(k), new=b.get(k))
                   for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
        if changes:
            changed.append(ChangedSubprocessor(id=sub_id, name=after[sub_id].facts.name,
                                               changes=changes))
    return ChangeNotice(
        customer=new.customer,
        old_fingerprint=old.profile_fingerprint,
        new_fingerprint=new.profile_fingerprint,
        notice_date=notice_date,
        effective_date=notice_date + timedelta(days=new.notice.days),
        objection_deadline=notice_date + timedelta(days=new.notice.objection_days),
        added=[s for i, s in after.items() if i not in before],
        removed=[s for i, s in before.items() if i not in after],
        changed=changed,
    )


def diff_files(old: Path, new: Path, notice_date: date) -> ChangeNotice:
    """The change notice from OLD to NEW (each a profile or a JSON list)."""
    return compare(load_list(old, notice_date), load_list(new, notice_date), notice_date)
