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
    or the app's environment file, and base64 (Ansible's slurp and copy content)."""
    env_escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")
                   .replace("$", "\\$"))
    raw = value.encode()
    forms = [value, quote(value, safe=""), quote_plus(value, safe=""), env_escaped,
             value.replace("%", "%%"), env_escaped.replace("%", "%%"),
             base64.b64encode(raw).decode(), base64.b64encode(raw).decode().rstrip("="),
             base64.urlsafe_b64encode(raw).decode().rstrip("=")]
    # Any of them may itself sit inside JSON (an event, a rendered file's diff).
    escaped = [json.dumps(f, ensure_ascii=a)[1:-1] for f in forms for a in (True, False)]
    return list(dict.fromkeys(forms + escaped))


def fragments(value: str) -> list[str]:
    """The strings whose presence betrays ``value``: each of its :func:`encodings`
    and, for multi-line values, each substantial line that is not PEM armour."""
    out = encodings(value)
    if "\n" in value:
        for raw in value.splitlines():
            line = raw.strip()
            if len(line) >= MIN_FRAGMENT and not _ARMOUR.match(line):
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
