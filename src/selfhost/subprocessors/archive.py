"""The subprocessor archive: every published list, notice and override, hash-chained.

One archive per customer, beside the profile:
``<profile dir>/.selfhost/<customer id>/subprocessors/archive.jsonl``. Each
line is one entry, written as canonical JSON (sorted keys, no whitespace,
UTF-8). An entry holds its sequence number, the time it was recorded, the
hash of the previous entry's line (``sha256:`` + hex; null for the first), its
content (a published list, a change notice or a notice override) and an
Ed25519 signature over the canonical JSON of the entry without ``signature``.

The hash of an entry is the SHA-256 of its line's bytes, so changing,
removing, reordering or inserting any entry breaks every later link, and the
signatures mean nobody without the private key can rebuild the chain.
Entries are only ever appended; the whole file is rewritten atomically with
the old bytes as its unchanged prefix, so a crash leaves the old archive.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selfhost import paths
from selfhost.errors import ChecksFailed, InvalidInput
from selfhost.models import field_errors
from selfhost.subprocessors.diff import ChangeNotice
from selfhost.subprocessors.document import Activation
from selfhost.subprocessors.files import write_file
from selfhost.subprocessors.signing import canonical_bytes, key_id

ARCHIVE_DIR = "subprocessors"
ARCHIVE_FILE = "archive.jsonl"
#: fields of a list that change with every rendering but not what it says
_VOLATILE = ("date", "tool_version", "profile_fingerprint", "evidence", "signature")


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PublishedList(_Entry):
    kind: Literal["list"] = "list"
    #: digest of what the list says (see :func:`list_digest`)
    digest: str
    #: the list's JSON object, as ``render --format json`` writes it
    list: dict[str, Any]


class RecordedNotice(_Entry):
    kind: Literal["notice"] = "notice"
    #: digest of the list the notice announces
    digest: str
    notice: ChangeNotice


class NoticeOverride(_Entry):
    kind: Literal["override"] = "override"
    #: digest of the list deployed before its notice was effective
    digest: str
    reason: str
    #: sequence number of the pending notice, or None when none was recorded
    notice_seq: int | None
    #: the subprocessors added or processing more, which the notice was for
    ids: list[str]


class Retirement(_Entry):
    """The deployment was removed from its hosts (``selfhost destroy``): from then on
    no subprocessor of the last list receives data from it."""

    kind: Literal["retired"] = "retired"
    #: digest of the last list published before, or None when none was
    digest: str | None
    #: the hosts the deployment was removed from
    hosts: list[str]
    reason: str


Content = Annotated[PublishedList | RecordedNotice | NoticeOverride | Retirement,
                    Field(discriminator="kind")]


class EntrySignature(_Entry):
    algorithm: Literal["ed25519"] = "ed25519"
    key_id: str
    value: str


class Entry(_Entry):
    seq: int = Field(ge=1)
    recorded_at: datetime
    previous_hash: str | None
    content: Content
    signature: EntrySignature

    def body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"signature"})

    def line(self) -> bytes:
        return canonical_bytes(self.model_dump(mode="json"))


def entry_hash(line: bytes) -> str:
    return "sha256:" + hashlib.sha256(line).hexdigest()


def list_digest(doc: dict[str, Any]) -> str:
    """What a list says, without the fields every rendering changes: two lists with
    the same digest are the same list for the customer."""
    stable = {k: v for k, v in doc.items() if k not in _VOLATILE}
    stable["subprocessors"] = without_activation(stable.get("subprocessors", []))
    return entry_hash(canonical_bytes(stable))


def subprocessors_digest(doc: dict[str, Any]) -> str:
    """The digest a notice is matched by: the subprocessors of a list's JSON object
    and what they get (a list and its notice match whatever else differs)."""
    payload = without_activation(doc.get("subprocessors", []))
    return entry_hash(canonical_bytes({"subprocessors": payload}))


def without_activation(subprocessors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The subprocessors without ``activation``: that is derived from the archive itself,
    so it never makes a list different."""
    return [{k: v for k, v in s.items() if k != "activation"} for s in subprocessors]


def archive_path(profile_path: Path, customer_id: str) -> Path:
    return paths.state_dir(profile_path, customer_id) / ARCHIVE_DIR / ARCHIVE_FILE


# -- reading and checking -------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    """The first entry that does not check, and why."""

    line: int
    seq: int | None
    why: str

    def message(self, path: Path) -> str:
        what = f"entry {self.seq}" if self.seq is not None else "an entry"
        return f"{path}:{self.line}: {what}: {self.why}"


def _parse(raw: bytes, number: int) -> tuple[Entry | None, str]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, "not a JSON object (the line was cut or altered)"
    try:
        entry = Entry.model_validate(data)
    except ValidationError as exc:
        path, message = field_errors(exc)[0]
        return None, f"{path}: {message} (not an archive entry written by selfhost)"
    if entry.line() != raw:
        return entry, ("its bytes differ from what was recorded (whitespace, key order or "
                       "escaping was changed)")
    return entry, ""


def _signature_problem(entry: Entry, public: Ed25519PublicKey) -> str:
    if entry.signature.key_id != key_id(public):
        return (f"signed with key {entry.signature.key_id}, not with the given public key "
                f"{key_id(public)}")
    try:
        value = base64.b64decode(entry.signature.value, validate=True)
        public.verify(value, canonical_bytes(entry.body()))
    except (binascii.Error, ValueError, InvalidSignature):
        return "the signature does not match: the entry was changed after it was signed"
    return ""


def read_lines(path: Path) -> list[bytes]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the archive ({exc.strerror})") from None
    if data and not data.endswith(b"\n"):
        # the last line was cut: keep it, so checking names it
        data += b"\n"
    return data.splitlines()


def check_lines(lines: list[bytes], public: Ed25519PublicKey | None
                ) -> tuple[list[Entry], Problem | None]:
    """The entries up to the first bad one, and that one's problem (None if all check).

    Without ``public`` the signatures are not checked (for reading the history).
    """
    entries: list[Entry] = []
    previous: bytes | None = None
    for number, raw in enumerate(lines, start=1):
        entry, why = _parse(raw, number)
        seq = entry.seq if entry is not None else None
        if entry is not None and not why:
            expected = entry_hash(previous) if previous is not None else None
            if entry.seq != number:
                why = f"sequence number {entry.seq} where {number} was expected (an entry " \
                      "was removed, inserted or moved)"
            elif entry.previous_hash != expected:
                why = ("its previous-entry hash does not match the entry before it (an "
                       "earlier entry was changed, removed or inserted)")
            elif public is not None:
                why = _signature_problem(entry, public)
        if why:
            return entries, Problem(line=number, seq=seq, why=why)
        assert entry is not None
        entries.append(entry)
        previous = raw
    return entries, None


def load(path: Path) -> list[Entry]:
    """The archive's entries, refusing an archive whose chain is broken."""
    entries, problem = check_lines(read_lines(path), None)
    if problem is not None:
        raise ChecksFailed(f"{problem.message(path)}; the archive is damaged: run "
                           "selfhost subprocessors archive-check")
    return entries


# -- appending ------------------------------------------------------------------------

@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer at a time: two publishers must not both append entry N."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path.parent / ".lock", "w", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sign(body: dict[str, Any], key: Ed25519PrivateKey) -> EntrySignature:
    value = key.sign(canonical_bytes(body))
    return EntrySignature(key_id=key_id(key.public_key()),
                          value=base64.b64encode(value).decode("ascii"))


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@contextmanager
def appending(path: Path, key: Ed25519PrivateKey) -> Iterator[list[Entry]]:
    """Lock the archive, check it with ``key``'s public half and yield its entries;
    entries the caller appends to the list are then written, signed, in order."""
    with _locked(path):
        lines = read_lines(path)
        entries, problem = check_lines(lines, key.public_key())
        if problem is not None:
            raise ChecksFailed(f"{problem.message(path)}; nothing was added to a damaged "
                               "archive (see selfhost subprocessors archive-check)")
        known = len(entries)
        yield entries
        if len(entries) == known:
            return
        data = b"".join(raw + b"\n" for raw in lines)
        data += b"".join(e.line() + b"\n" for e in entries[known:])
        write_file(path, data, mode=0o644)


def make_entry(entries: list[Entry],
               content: PublishedList | RecordedNotice | NoticeOverride | Retirement,
               key: Ed25519PrivateKey, recorded_at: datetime | None = None) -> Entry:
    """The next entry after ``entries`` (signed), appended to ``entries``."""
    previous = entry_hash(entries[-1].line()) if entries else None
    body = {"seq": len(entries) + 1,
            "recorded_at": (recorded_at or now_utc()).isoformat().replace("+00:00", "Z"),
            "previous_hash": previous,
            "content": content.model_dump(mode="json")}
    entry = Entry.model_validate({**body, "signature": _sign(
        Entry.model_validate({**body, "signature": {"key_id": "", "value": ""}}).body(),
        key)})
    entries.append(entry)
    return entry


def lists(entries: list[Entry]) -> list[tuple[Entry, PublishedList]]:
    return [(e, e.content) for e in entries if isinstance(e.content, PublishedList)]


def last_list(entries: list[Entry]) -> PublishedList | None:
    published = lists(entries)
    return published[-1][1] if published else None


def list_date(published: PublishedList) -> date:
    return date.fromisoformat(str(published.list["date"]))


def invalid_content(path: Path, seq: int, exc: ValidationError) -> InvalidInput:
    where, message = field_errors(exc)[0]
    return InvalidInput(f"{path}:{seq}: content.list.{where}: {message} (the entry checks "
                        "but its list is not one this selfhost version reads)")


def _announced(notice: ChangeNotice) -> list[str]:
    return [s.id for s in notice.added] + [c.id for c in notice.changed]


def activations(entries: list[Entry]) -> dict[str, Activation]:
    """For each subprocessor, the entry under which it last became active: the first
    published list that named it, or the latest notice or override announcing it."""
    out: dict[str, Activation] = {}
    for entry in entries:
        content = entry.content
        if isinstance(content, PublishedList):
            for sub in content.list.get("subprocessors", []):
                if sub["id"] not in out:
                    out[sub["id"]] = Activation(
                        kind="initial-list", entry=entry.seq, date=list_date(content),
                        detail=f"in the list published on {list_date(content)} "
                        f"(archive entry {entry.seq})")
        elif isinstance(content, RecordedNotice):
            n = content.notice
            for sub_id in _announced(n):
                out[sub_id] = Activation(
                    kind="notice", entry=entry.seq, date=n.notice_date,
                    detail=f"notice {entry.seq} of {n.notice_date}, effective "
                    f"{n.effective_date} (archive entry {entry.seq})")
        elif isinstance(content, NoticeOverride):
            for sub_id in content.ids:
                out[sub_id] = Activation(
                    kind="override", entry=entry.seq, date=entry.recorded_at.date(),
                    detail=f"deployed on {entry.recorded_at.date()} before its notice was "
                    f"effective; reason: {content.reason} (archive entry {entry.seq})")
    return out
