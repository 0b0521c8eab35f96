"""``subprocessors publish`` and ``history``: the archive as a customer reads it.

Publishing renders the profile's list and appends it to the archive unless it
says the same as the last published list. After every append the Atom feed and
the JSON Feed beside the archive are written again from the whole archive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from selfhost.errors import InvalidInput
from selfhost.subprocessors import archive, feeds
from selfhost.subprocessors.archive import (
    Entry,
    NoticeOverride,
    PublishedList,
    RecordedNotice,
    Retirement,
)
from selfhost.subprocessors.diff import compare
from selfhost.subprocessors.document import SubprocessorList, build_document
from selfhost.subprocessors.files import write_file
from selfhost.subprocessors.render import list_inputs, load_plan
from selfhost.subprocessors.signing import load_private_key


class HistoryItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int
    kind: str
    recorded_at: datetime
    #: the list's date (list entries) or the notice date (notice entries)
    date: date | None
    hash: str
    key_id: str
    #: what happened, one line each
    changes: list[str]


@dataclass(frozen=True)
class Published:
    archive: Path
    #: the entry added, None when the list was unchanged
    entry: Entry | None
    feeds: list[Path]


def as_list(path: Path, published: PublishedList, seq: int) -> SubprocessorList:
    try:
        return SubprocessorList.model_validate(published.list)
    except ValidationError as exc:
        raise archive.invalid_content(path, seq, exc) from None


def feed(path: Path, entries: list[Entry]) -> feeds.Feed:
    """The feed of the archive at ``path``: its published changes and notices."""
    items = history(path, entries)
    notices = {e.content.digest: (e.seq, e.content.notice) for e in entries
               if isinstance(e.content, RecordedNotice)}
    out: list[feeds.FeedItem] = []
    latest: SubprocessorList | None = None
    for entry, item in zip(entries, items, strict=True):
        content = entry.content
        if isinstance(content, PublishedList):
            latest = as_list(path, content, entry.seq)
            title = f"Sub-processor list of {item.date}"
        elif isinstance(content, RecordedNotice):
            title = (f"Notice: sub-processor change effective "
                     f"{content.notice.effective_date}")
        elif isinstance(content, Retirement):
            out.append(feeds.FeedItem(hash=item.hash, seq=item.seq, kind=item.kind,
                                      title="Deployment retired", recorded_at=item.recorded_at,
                                      lines=item.changes, notice=None))
            continue
        else:
            continue
        announced = notices.get(archive.subprocessors_digest(content.list)
                                if isinstance(content, PublishedList) else content.digest)
        dates = None
        if announced is not None:
            seq, n = announced
            dates = feeds.NoticeDates(notice_seq=seq, notice_date=n.notice_date,
                                      effective_date=n.effective_date,
                                      objection_deadline=n.objection_deadline)
        out.append(feeds.FeedItem(hash=item.hash, seq=item.seq, kind=item.kind, title=title,
                                  recorded_at=item.recorded_at, lines=item.changes,
                                  notice=dates))
    if latest is None:
        raise InvalidInput(f"{path}: nothing published yet (run selfhost subprocessors "
                           "publish PROFILE --sign-key KEY)")
    customer = latest.customer
    return feeds.Feed(customer_id=customer.id,
                      title=f"Sub-processors of {customer.name} (backend.chat, self-hosted)",
                      author=customer.name, email=customer.contact_email,
                      items=list(reversed(out)))


def write_feeds(path: Path, entries: list[Entry]) -> list[Path]:
    """The Atom feed and the JSON Feed beside the archive at ``path``."""
    out = []
    the_feed = feed(path, entries)
    for name, text in ((feeds.ATOM_FILE, feeds.atom(the_feed)),
                       (feeds.JSON_FILE, feeds.json_feed(the_feed))):
        target = path.parent / name
        write_file(target, text.encode("utf-8"))
        out.append(target)
    return out


def profile_archive(profile_path: Path) -> Path:
    """The archive of the profile's customer."""
    return archive.archive_path(profile_path, load_plan(profile_path).customer.id)


def publish(profile_path: Path, sign_key: Path, *, on: date, now: datetime | None = None,
            catalog_overlay: Path | None = None) -> Published:
    key = load_private_key(sign_key)
    inputs = list_inputs(profile_path, catalog_overlay)
    path = archive.archive_path(profile_path, inputs.plan.customer.id)
    with archive.appending(path, key) as entries:
        doc = build_document(inputs.plan, on=on, catalog=inputs.catalog,
                             overlay_facts=inputs.overlay_facts,
                             activations=archive.activations(entries))
        payload = doc.payload()
        digest = archive.list_digest(payload)
        last = archive.last_list(entries)
        if last is not None and last.digest == digest:
            return Published(archive=path, entry=None, feeds=[])
        entry = archive.make_entry(entries, PublishedList(digest=digest, list=payload), key,
                                   now)
    return Published(archive=path, entry=entry, feeds=write_feeds(path, entries))


def _summary(path: Path, entry: Entry, previous: PublishedList | None) -> list[str]:
    content = entry.content
    if isinstance(content, PublishedList):
        doc = as_list(path, content, entry.seq)
        if previous is None:
            names = ", ".join(s.facts.name for s in doc.subprocessors) or "none"
            return [f"first published list: {names}"]
        lines = compare(as_list(path, previous, entry.seq), doc, doc.date).lines()
        return lines or ["the document changed, no subprocessor did"]
    if isinstance(content, RecordedNotice):
        n = content.notice
        return [f"notice of change sent {n.notice_date}: effective {n.effective_date}, "
                f"objections until {n.objection_deadline}", *n.lines()]
    if isinstance(content, Retirement):
        return [f"deployment retired: removed from {', '.join(content.hosts) or 'no host'} "
                f"({content.reason}); its subprocessors receive no more data from it"]
    assert isinstance(content, NoticeOverride)
    pending = f"notice {content.notice_seq}" if content.notice_seq else "no notice"
    return [f"deployed before the change's notice was effective ({pending}); "
            f"reason: {content.reason}"]


def history(path: Path, entries: list[Entry]) -> list[HistoryItem]:
    items = []
    previous: PublishedList | None = None
    for entry in entries:
        content = entry.content
        when: date | None = None
        if isinstance(content, PublishedList):
            when = archive.list_date(content)
        elif isinstance(content, RecordedNotice):
            when = content.notice.notice_date
        items.append(HistoryItem(
            seq=entry.seq, kind=content.kind, recorded_at=entry.recorded_at, date=when,
            hash=archive.entry_hash(entry.line()), key_id=entry.signature.key_id,
            changes=_summary(path, entry, previous)))
        if isinstance(content, PublishedList):
            previous = content
    return items


def require_archive(path: Path) -> list[Entry]:
    entries = archive.load(path)
    if not entries:
        raise InvalidInput(f"{path}: nothing published yet (run selfhost subprocessors "
                           "publish PROFILE --sign-key KEY)")
    return entries


def retire(path: Path, sign_key: Path, hosts: list[str], reason: str) -> int | None:
    """Mark the deployment of the archive at ``path`` as retired (once); returns the
    entry's number, or None when the archive already ends with a retirement."""
    key = load_private_key(sign_key)
    with archive.appending(path, key) as entries:
        if entries and isinstance(entries[-1].content, Retirement):
            return None
        last = archive.last_list(entries)
        entry = archive.make_entry(entries, Retirement(
            digest=last.digest if last is not None else None, hosts=hosts, reason=reason), key)
    if archive.last_list(entries) is not None:
        write_feeds(path, entries)
    return entry.seq
