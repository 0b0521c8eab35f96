"""Notices of change, recorded in the archive, and the gate they put on deploys.

``subprocessors notice PROFILE --date D`` records the change from the last
published list to the profile's list: effective D + ``notice.days``, objections
until D + ``notice.objection_days``; the notice document is written beside the
archive (Markdown and HTML).

A deploy whose list adds a subprocessor, or changes the data or purpose of one,
compared with the list last deployed (or, before the first deploy, the last
published one) waits until a notice of exactly that set of subprocessors is
effective. Removing one needs no wait. The gate applies once the customer has
an archive; ``--override-notice REASON`` deploys anyway and records the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from selfhost.errors import Aborted, InvalidInput
from selfhost.i18n import DEFAULT, Lang
from selfhost.plan import Plan
from selfhost.subprocessors import archive
from selfhost.subprocessors.archive import Entry, NoticeOverride, RecordedNotice
from selfhost.subprocessors.diff import ChangeNotice, compare
from selfhost.subprocessors.document import SubprocessorList, build_document
from selfhost.subprocessors.files import write_file
from selfhost.subprocessors.publishing import as_list, write_feeds
from selfhost.subprocessors.render import list_inputs
from selfhost.subprocessors.signing import load_private_key

#: the fields of a subprocessor whose change needs a notice: what it processes
_PROCESSING = ("use.data", "use.purpose")


def subprocessors_digest(doc: SubprocessorList) -> str:
    """The digest a notice is matched by (see :func:`archive.subprocessors_digest`)."""
    return archive.subprocessors_digest(doc.payload())


def notices(entries: list[Entry]) -> list[tuple[Entry, RecordedNotice]]:
    return [(e, e.content) for e in entries if isinstance(e.content, RecordedNotice)]


def notice_documents(path: Path, seq: int) -> list[Path]:
    return [path.parent / f"notice-{seq}.{ext}" for ext in ("md", "html")]


@dataclass(frozen=True)
class NoticeResult:
    archive: Path
    notice: ChangeNotice
    seq: int | None
    #: True when this call added the entry, False when it was already recorded
    added: bool
    documents: list[Path]


def record_notice(profile_path: Path, sign_key: Path, *, on: date,
                  catalog_overlay: Path | None = None, lang: Lang = DEFAULT) -> NoticeResult:
    key = load_private_key(sign_key)
    inputs = list_inputs(profile_path, catalog_overlay)
    new = build_document(inputs.plan, on=on, catalog=inputs.catalog,
                         overlay_facts=inputs.overlay_facts)
    path = archive.archive_path(profile_path, new.customer.id)
    digest = subprocessors_digest(new)
    with archive.appending(path, key) as entries:
        last = archive.last_list(entries)
        if last is None:
            raise InvalidInput(f"{path}: no list published yet, so there is no change to "
                               "announce (publish the list in force first: selfhost "
                               "subprocessors publish PROFILE)")
        notice = compare(as_list(path, last, 0), new, on)
        if not notice.has_changes:
            return NoticeResult(path, notice, None, False, [])
        for entry, recorded in notices(entries):
            if recorded.digest == digest:
                # asked again (perhaps in another language): the same notice's documents
                return NoticeResult(path, recorded.notice, entry.seq, False,
                                    _write_documents(path, entry.seq, recorded.notice, lang))
        entry = archive.make_entry(entries, RecordedNotice(digest=digest, notice=notice), key)
    documents = _write_documents(path, entry.seq, notice, lang)
    write_feeds(path, entries)
    return NoticeResult(path, notice, entry.seq, True, documents)


def _write_documents(path: Path, seq: int, notice: ChangeNotice, lang: Lang) -> list[Path]:
    """The notice document (md, html) of archive entry ``seq``, in ``lang``."""
    documents = notice_documents(path, seq)
    write_file(documents[0], notice.to_markdown(lang).encode("utf-8"))
    write_file(documents[1], notice.to_html(seq, lang).encode("utf-8"))
    return documents


# -- the gate -------------------------------------------------------------------------

@dataclass(frozen=True)
class Gate:
    archive: Path
    archived: bool
    on: date
    #: :func:`subprocessors_digest` of the list to deploy
    digest: str
    #: the added or changed subprocessors that need a notice, one line each
    needs_notice: list[str]
    #: their ids
    ids: list[str]
    #: the notice of exactly this list (its entry number and content), if recorded
    notice: tuple[int, ChangeNotice] | None

    @property
    def blocked(self) -> bool:
        return bool(self.needs_notice) and (
            self.notice is None or self.notice[1].effective_date > self.on)

    def lines(self) -> list[str]:
        if not self.archived:
            return ["notice gate: off (no subprocessor archive yet; selfhost subprocessors "
                    "publish starts it)"]
        if not self.needs_notice:
            return ["notice gate: no subprocessor added or processing more; no notice "
                    "needed"]
        if self.notice is None:
            return ["notice gate: BLOCKED, no notice recorded for this change "
                    "(selfhost subprocessors notice PROFILE --date D):",
                    *(f"  {line}" for line in self.needs_notice)]
        seq, n = self.notice
        state = "effective" if not self.blocked else "BLOCKED, not yet effective"
        return [f"notice gate: notice {seq} of {n.notice_date}, effective "
                f"{n.effective_date} (objections until {n.objection_deadline}): {state}"]

    def refusal(self) -> Aborted:
        change = "; ".join(self.needs_notice)
        override = ("; to deploy anyway, pass --override-notice REASON (recorded in the "
                    "archive)")
        if self.notice is None:
            return Aborted(f"this deployment adds or changes subprocessors ({change}) and "
                           f"no notice of the change is recorded in {self.archive}: record "
                           "one with `selfhost subprocessors notice PROFILE --date D` and "
                           f"deploy once it is effective{override}")
        seq, n = self.notice
        return Aborted(f"this deployment adds or changes subprocessors ({change}); notice "
                       f"{seq} of {n.notice_date} makes the change effective on "
                       f"{n.effective_date}, not before (today is {self.on}){override}")


def _needs_notice(baseline: SubprocessorList, new: SubprocessorList, on: date
                  ) -> tuple[list[str], list[str]]:
    change = compare(baseline, new, on)
    lines = [f"+ {s.id} ({s.facts.name}): added" for s in change.added]
    ids = [s.id for s in change.added]
    for item in change.changed:
        fields = [c.field for c in item.changes if c.field.startswith(_PROCESSING)]
        if fields:
            lines.append(f"~ {item.id} ({item.name}): {', '.join(fields)} changed")
            ids.append(item.id)
    return lines, ids


def evaluate(profile_path: Path, the_plan: Plan, deployed: SubprocessorList | None,
             on: date) -> Gate:
    """The gate for deploying ``the_plan`` on ``on``, given the list last deployed."""
    path = archive.archive_path(profile_path, the_plan.customer.id)
    entries = archive.load(path)
    last = archive.last_list(entries)
    baseline = deployed or (as_list(path, last, 0) if last is not None else None)
    new = build_document(the_plan, on=on)
    digest = subprocessors_digest(new)
    if not entries or baseline is None:
        return Gate(path, bool(entries), on, digest, [], [], None)
    found = [(e.seq, n.notice) for e, n in notices(entries) if n.digest == digest]
    lines, ids = _needs_notice(baseline, new, on)
    return Gate(path, True, on, digest, lines, ids, found[-1] if found else None)


def check_override(gate: Gate, reason: str | None, sign_key: Path | None) -> None:
    """Refuse a blocked deploy, unless it is overridden with a reason and a key to
    record it; raised before anything touches a host."""
    if not gate.blocked:
        return
    if reason is None:
        raise gate.refusal()
    if not reason.strip():
        raise InvalidInput("--override-notice needs a reason (it is recorded in the archive)")
    if sign_key is None:
        raise InvalidInput("--override-notice needs --sign-key KEY (or SELFHOST_SIGN_KEY): "
                           "the override is recorded, signed, in the archive")
    load_private_key(sign_key)


def record_override(gate: Gate, reason: str, sign_key: Path) -> int:
    """Append the override to the archive; returns its entry number."""
    key = load_private_key(sign_key)
    with archive.appending(gate.archive, key) as entries:
        entry = archive.make_entry(entries, NoticeOverride(
            digest=gate.digest, reason=reason.strip(),
            notice_seq=gate.notice[0] if gate.notice is not None else None,
            ids=gate.ids), key)
    write_feeds(gate.archive, entries)
    return entry.seq
