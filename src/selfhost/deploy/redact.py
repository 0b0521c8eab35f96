"""Secret values, and the two things done with them: hiding and finding.

A module may echo a secret despite ``no_log`` (a failing command's stderr, say).
Everything deploy prints goes through :meth:`Redactor.redact`, and everything the
runner leaves on disk goes through :func:`scan` before it may be kept.

A multi-line secret (a PEM key) is also matched line by line: a module that
prints one line of a key has leaked it as surely as one that prints all of it.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

#: shorter fragments are too likely to occur by chance (PEM armour, short words)
MIN_FRAGMENT = 12
MASK = "********"
_ARMOUR = re.compile(r"^-----(BEGIN|END) [A-Z ]+-----$")


def encodings(value: str) -> list[str]:
    """``value`` in each form in which it reaches a file: as is, JSON-escaped (extra
    vars, events), URL-encoded (a password inside a URL), escaped for a systemd unit
    or the app's environment file, base64 (Ansible's slurp and copy content) and hex
    (a dump, a hashing tool's input echoed back)."""
    env_escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")
                   .replace("$", "\\$"))
    raw = value.encode()
    forms = [value, quote(value, safe=""), quote_plus(value, safe=""), env_escaped,
             value.replace("%", "%%"), env_escaped.replace("%", "%%"),
             base64.b64encode(raw).decode(), base64.b64encode(raw).decode().rstrip("="),
             base64.urlsafe_b64encode(raw).decode().rstrip("="), raw.hex(), raw.hex().upper()]
    # Any of them may itself sit inside JSON (an event, a rendered file's diff).
    escaped = [json.dumps(f, ensure_ascii=a)[1:-1] for f in forms for a in (True, False)]
    return list(dict.fromkeys(forms + escaped))


def _public_lines(value: str) -> set[str]:
    """Lines of a PEM private key that hold only public bytes (an EC key's point, an
    RSA key's modulus), which its certificate carries too: finding one betrays
    nothing, and the certificate's base64 can line up with it by chance."""
    # Imported here: only values that look like a private key need cryptography.
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: PLC0415

    try:
        key = serialization.load_pem_private_key(value.encode(), password=None)
    except (ValueError, TypeError):
        return set()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        public = key.public_key().public_bytes(serialization.Encoding.X962,
                                               serialization.PublicFormat.UncompressedPoint)
    elif isinstance(key, rsa.RSAPrivateKey):
        n = key.public_key().public_numbers().n
        public = n.to_bytes((n.bit_length() + 7) // 8, "big")
    else:
        return set()
    body = [line.strip() for line in value.splitlines()
            if line.strip() and not _ARMOUR.match(line.strip())]
    der = base64.b64decode("".join(body))
    start = der.find(public)
    if start < 0:
        return set()
    found: set[str] = set()
    offset = 0
    for line in body:
        size = len(base64.b64decode(line)) if len(line) % 4 == 0 else 0
        if size and start <= offset and offset + size <= start + len(public):
            found.add(line)
        offset += size
    return found


def fragments(value: str) -> list[str]:
    """The strings whose presence betrays ``value``: each of its :func:`encodings`
    and, for multi-line values, each substantial line that is not PEM armour (nor
    public, see :func:`_public_lines`)."""
    out = encodings(value)
    if "\n" in value:
        public = _public_lines(value) if "PRIVATE KEY-----" in value else set()
        for raw in value.splitlines():
            line = raw.strip()
            if len(line) >= MIN_FRAGMENT and not _ARMOUR.match(line) and line not in public:
                out.append(line)
    return [f for f in dict.fromkeys(out) if f]


class Redactor:
    """Replaces every known secret value (and fragment) in text with a mask."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._by_fragment: dict[str, str] = {}
        for name, value in secrets.items():
            if not value:
                continue
            for fragment in fragments(value):
                self._by_fragment.setdefault(fragment, name)
        # Longest first, so a whole value is masked before any of its lines.
        ordered = sorted(self._by_fragment, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def redact(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def redact_counting(self, text: str) -> tuple[str, Counter[str]]:
        """``text`` redacted, and how often each secret (by name) was masked."""
        counts: Counter[str] = Counter()
        if self._pattern is None or not text:
            return text, counts

        def mask(match: re.Match[str]) -> str:
            counts[self._by_fragment[match.group(0)]] += 1
            return MASK

        return self._pattern.sub(mask, text), counts

    def find(self, text: str) -> list[str]:
        """The names of the secrets that occur in ``text``."""
        if self._pattern is None:
            return []
        return sorted({self._by_fragment[m.group(0)] for m in self._pattern.finditer(text)})


@dataclass(frozen=True)
class Hit:
    """A secret found in a file; ``secret`` is its name, never its value."""

    path: Path
    secret: str

    def __str__(self) -> str:
        return f"{self.path}: {self.secret}"


def scan(paths: Iterable[Path], redactor: Redactor) -> list[Hit]:
    """Every (file, secret name) where a secret value occurs, in files under ``paths``.

    Files are read as bytes and decoded leniently: a secret inside a binary or
    badly encoded file still counts.
    """
    hits: list[Hit] = []
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            try:
                text = path.read_bytes().decode("utf-8", errors="replace")
            except OSError:
                continue
            hits += [Hit(path, name) for name in redactor.find(text)]
    return hits


# -- secrets nobody told us about ---------------------------------------------------
#
# A support bundle holds text selfhost did not write (journals, hand-edited configs),
# which may carry credentials that are not among the profile's secrets: a key pasted
# into a comment, another service's token. These patterns mask what has the shape of
# a credential. Each keeps the part that says what it was (the key name, the URL's
# host), so the reader still sees where a credential was.

@dataclass(frozen=True)
class Shape:
    """A credential's shape: ``regex``'s group ``secret`` is what gets masked."""

    name: str
    regex: re.Pattern[str]


_NAME = r"[A-Za-z0-9_.-]*(?:password|passwd|passphrase|secret|token|api[_-]?key|apikey" \
        r"|access[_-]?key|private[_-]?key|credential|dsn)[A-Za-z0-9_.-]*"

SHAPES: tuple[Shape, ...] = (
    Shape("private key", re.compile(
        r"-----BEGIN (?P<kind>[A-Z0-9 ]*)PRIVATE KEY-----(?P<secret>[\s\S]*?)"
        r"(?:-----END (?P=kind)PRIVATE KEY-----|\Z)")),
    Shape("password in a URL", re.compile(
        r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@\"']*:(?P<secret>[^@\s/\"']+)@")),
    Shape("bearer token", re.compile(
        r"(?i)\b(?:bearer|token|basic)\s+(?P<secret>[A-Za-z0-9._~+/-]{16,}=*)")),
    Shape("API key", re.compile(
        r"\b(?P<secret>sk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}|SG\.[A-Za-z0-9_.-]{16,}"
        r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|AKIA[0-9A-Z]{16}"
        r"|xox[abprs]-[A-Za-z0-9-]{10,}|glpat-[A-Za-z0-9_-]{20})")),
    # KEY=value and KEY: value (environment files, YAML, logs), "key": "value" (JSON)
    Shape("credential assignment", re.compile(
        rf"(?i)(?:\b{_NAME}\s*=\s*|^\s*(?:export\s+)?{_NAME}\s*:\s+)[\"']?"
        r"(?P<secret>[^\s\"',;]+)", re.MULTILINE)),
    Shape("credential in JSON", re.compile(
        rf"(?i)\"{_NAME}\"\s*:\s*\"(?P<secret>[^\"]+)\"")),
    # Redis's and PostgreSQL's own spellings of a password setting
    Shape("server password setting", re.compile(
        r"(?im)^\s*(?:requirepass|masterauth|primaryauth)\s+[\"']?(?P<secret>[^\s\"']+)")),
)


def mask_shapes(text: str) -> tuple[str, Counter[str]]:
    """``text`` with every :data:`SHAPES` match masked, and the count per shape.

    A value that is already the mask is left alone (and not counted), so running
    this over redacted text changes nothing.
    """
    counts: Counter[str] = Counter()
    for shape in SHAPES:

        def mask(match: re.Match[str], shape: Shape = shape) -> str:
            start, end = match.span("secret")
            value = match.group("secret")
            if not value.strip() or value.strip() == MASK:
                return match.group(0)
            counts[shape.name] += 1
            offset = match.start()
            whole = match.group(0)
            keep = "\n" if shape.name == "private key" else ""
            return whole[:start - offset] + keep + MASK + keep + whole[end - offset:]

        text = shape.regex.sub(mask, text)
    return text, counts


class Scrubber:
    """Known secret values first (:class:`Redactor`), then :data:`SHAPES`: what every
    part of a support bundle passes through before it is written."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def scrub(self, text: str) -> tuple[str, Counter[str]]:
        """``text`` redacted, and what was masked: a secret's name or a shape's."""
        known_masked, counts = self.redactor.redact_counting(text)
        shaped, shapes = mask_shapes(known_masked)
        return shaped, counts + shapes

    def leftovers(self, text: str) -> list[str]:
        """What :meth:`scrub` would still mask in ``text``: empty for scrubbed text."""
        _, shapes = mask_shapes(text)
        return sorted({*self.redactor.find(text), *shapes})
