"""The Profile's field types: one validator per kind of value a profile holds.

Each refuses a bad value with a message that says what to write instead; the
models in :mod:`selfhost.models` put them together.
"""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from selfhost.hostnames import host_or_ip as _host_or_ip
from selfhost.hostnames import hostname as _hostname
from selfhost.residency import RESIDENCY_CODES

# Matched with fullmatch: ``re.match(...$)`` would accept a trailing newline.
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+"
                    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+")
_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
#: C0 and C1 controls, DEL and the Unicode line and paragraph separators
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value) or len(value) > 254:
        raise ValueError(f"{value!r} is not a valid e-mail address (expected name@example.com)")
    return value


def _residency(value: str) -> str:
    code = value.upper()
    if code not in RESIDENCY_CODES:
        raise ValueError(
            f"{value!r} is not a residency code (use EU, or an ISO 3166-1 alpha-2 country "
            "code such as US, IN, DE)"
        )
    return code


def _slug(value: str) -> str:
    if not _SLUG.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid id (lower-case letters, digits and hyphens, "
            "at most 64 characters, e.g. acme-gmbh)"
        )
    return value


def _version_text(value: object) -> object:
    """``min_version: 1.3`` unquoted is a YAML float; read it as the text it means."""
    return f"{value:.1f}" if isinstance(value, float) else value


#: system trees a backup directory may not be in (the host's own files, kernel and
#: runtime file systems, and the data directories that are being backed up)
_SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32",
                 "/proc", "/run", "/sbin", "/sys", "/tmp", "/usr", "/var/tmp", "/var/run",
                 "/var/lock", "/var/lib/postgresql", "/var/lib/redis", "/opt/backend-chat")
#: directories a backup directory may be inside but not be
_SYSTEM_DIRS = ("/", "/home", "/media", "/mnt", "/opt", "/root", "/srv", "/var",
                "/var/backups", "/var/cache", "/var/lib", "/var/log", "/var/mail",
                "/var/opt", "/var/spool")


def _backup_directory(value: str) -> str:
    """The directory, normalised (``/var/backups/../x/`` is ``/var/x``), kept out of
    the system's own directories, which the backup role would take over."""
    path = "/" + posixpath.normpath(value).lstrip("/")
    inside = next((t for t in _SYSTEM_TREES if path == t or path.startswith(t + "/")), None)
    if inside or path in _SYSTEM_DIRS:
        where = f"inside {inside}" if inside else "a system directory"
        raise ValueError(f"{value!r} is {where}, which backups must not take over (use a "
                         "directory of its own, e.g. /var/backups/backend-chat)")
    return path


HostName = Annotated[str, AfterValidator(_hostname)]
HostOrIP = Annotated[str, AfterValidator(_host_or_ip)]
Email = Annotated[str, AfterValidator(_email)]
Port = Annotated[int, Field(ge=1, le=65535)]


def refuse_control(value: object) -> object:
    """Text with a newline or other control character is refused: every string of a
    profile ends up in some configuration file (an nginx site, a systemd unit, the
    app's environment file), where a newline would start a directive of its own."""
    texts = value if isinstance(value, list) else [value]
    for text in texts:
        if isinstance(text, str) and (found := _CONTROL.search(text)):
            raise ValueError(f"contains the control character {found.group()!r} (remove it; "
                             "values here are single-line text without control characters)")
    return value
Slug = Annotated[str, AfterValidator(_slug)]
Residency = Annotated[str, AfterValidator(_residency)]
TLSVersion = Annotated[Literal["1.2", "1.3"], BeforeValidator(_version_text)]
BackupDirectory = Annotated[str, Field(pattern=r"^/\S+$"), AfterValidator(_backup_directory)]
