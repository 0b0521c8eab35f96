"""Reading an input file the way an untrusted one must be read: bounded.

Every file a user names (profiles, answers, prospects, certificates, keys, key
files, secrets files, release tarballs) is opened here. Only a regular file is
read, and never more than its limit: a FIFO would block the read forever, a
device such as ``/dev/zero`` never ends, and a huge file would exhaust memory.
The file is opened non-blocking so that a FIFO is refused at once instead of
waiting for a writer, and its kind is checked on the open descriptor, so a
file swapped for another between the check and the read cannot slip through.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from selfhost.errors import InvalidInput

#: a profile, answers file or prospects file is a few kilobytes
TEXT_LIMIT = 1_000_000
#: a PEM certificate chain or key (chains of a dozen certificates stay far below)
PEM_LIMIT = 1_000_000
#: a key file is 32 bytes or more of random material; anything this large is a mistake
KEY_FILE_LIMIT = 64 * 1024


class UnfitFile(OSError):
    """The path is not a regular file within its size limit."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.strerror = reason
        self.reason = reason


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def read_bytes(path: Path, limit: int) -> bytes:
    """The contents of the regular file ``path``; raises :class:`UnfitFile` (an
    OSError, so callers that report OSError report this too) for any other kind
    of file or one larger than ``limit`` bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnfitFile(f"it is {_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise UnfitFile(f"it is larger than {limit} bytes")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise UnfitFile(f"it is larger than {limit} bytes")
    return data


def read_text(path: Path, limit: int = TEXT_LIMIT, encoding: str = "utf-8") -> str:
    """:func:`read_bytes`, decoded (UnicodeDecodeError when it is not ``encoding``)."""
    return read_bytes(path, limit).decode(encoding)


def refuse_unfit(path: Path, what: str, limit: int = TEXT_LIMIT) -> None:
    """Raise :class:`InvalidInput` at once when ``path`` exists but is no regular
    file within ``limit`` (for paths that are read later, or by another program)."""
    try:
        info = path.stat()
    except OSError:
        return
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(f"{path}:1: {what}: {_kind(info.st_mode)}, not a regular file "
                           "(give the path of a regular file)")
    if info.st_size > limit:
        raise InvalidInput(f"{path}:1: {what}: larger than {limit} bytes (check the path)")


def reason(exc: OSError | UnicodeDecodeError) -> str:
    """Why a read failed, in words (``strerror`` for OS errors)."""
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return exc.strerror or str(exc)
