"""The archive as feeds: Atom (RFC 4287) and JSON Feed 1.1.

One item per published list that changed something and one per recorded
notice of a coming change, newest first, so a customer subscribes instead of
checking a page. A list item carries the dates of the notice it was announced
under; a notice item carries its effective date and objection deadline (in the
text and, in the JSON Feed, as the ``_selfhost`` extension object).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from xml.etree import ElementTree as ET

from pydantic import BaseModel, ConfigDict

ATOM_FILE = "feed.atom"
JSON_FILE = "feed.json"
_ATOM_NS = "http://www.w3.org/2005/Atom"


class NoticeDates(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    notice_seq: int
    notice_date: date
    effective_date: date
    objection_deadline: date


class FeedItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the archive entry's hash (``sha256:...``): stable and unique
    hash: str
    seq: int
    kind: str
    title: str
    recorded_at: datetime
    lines: list[str]
    notice: NoticeDates | None


class Feed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: str
    title: str
    author: str
    email: str
    items: list[FeedItem]


def _stamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _urn(digest: str) -> str:
    return "urn:" + digest


def _text(item: FeedItem) -> str:
    lines = list(item.lines)
    if item.notice is not None and item.kind == "list":
        n = item.notice
        lines.append(f"Notice {n.notice_seq} sent {n.notice_date}; effective "
                     f"{n.effective_date}; objections until {n.objection_deadline}.")
    return "\n".join(lines)


def _updated(feed: Feed) -> str:
    return _stamp(max(i.recorded_at for i in feed.items)) if feed.items else \
        "1970-01-01T00:00:00Z"


def atom(feed: Feed) -> str:
    ET.register_namespace("", _ATOM_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None,
            **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{_ATOM_NS}}}{tag}", attrs)
        el.text = text
        return el

    root = ET.Element(f"{{{_ATOM_NS}}}feed")
    sub(root, "id", f"urn:selfhost:subprocessors:{feed.customer_id}")
    sub(root, "title", feed.title)
    sub(root, "updated", _updated(feed))
    author = sub(root, "author")
    sub(author, "name", feed.author)
    sub(author, "email", feed.email)
    sub(root, "generator", "selfhost")
    for item in feed.items:
        entry = sub(root, "entry")
        sub(entry, "id", _urn(item.hash))
        sub(entry, "title", item.title)
        sub(entry, "updated", _stamp(item.recorded_at))
        sub(entry, "published", _stamp(item.recorded_at))
        sub(entry, "category", term=item.kind)
        sub(entry, "content", _text(item), type="text")
    ET.indent(root)
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            + ET.tostring(root, encoding="unicode") + "\n")


def json_feed(feed: Feed) -> str:
    items = []
    for item in feed.items:
        extension: dict[str, object] = {"kind": item.kind, "archive_entry": item.seq}
        if item.notice is not None:
            extension.update(item.notice.model_dump(mode="json"))
        items.append({
            "id": _urn(item.hash),
            "title": item.title,
            "content_text": _text(item),
            "date_published": _stamp(item.recorded_at),
            "tags": [item.kind],
            "_selfhost": extension,
        })
    data = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": feed.title,
        "description": "Changes to the list of sub-processors (GDPR Art. 28(2)), with the "
                       "notice dates",
        "authors": [{"name": feed.author, "url": f"mailto:{feed.email}"}],
        "language": "en",
        "items": items,
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
