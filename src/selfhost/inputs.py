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
from typing import BinaryIO

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


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading, once it is known to be a regular file; raises
    :class:`UnfitFile` (an OSError) for a FIFO, a device, a socket or a directory."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnfitFile(f"it is {_kind(mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: Path, limit: int) -> bytes:
    """The contents of the regular file ``path``; raises :class:`UnfitFile` (an
    OSError, so callers that report OSError report this too) for any other kind
    of file or one larger than ``limit`` bytes."""
    with open_regular(path) as handle:
        if os.fstat(handle.fileno()).st_size > limit:
            raise UnfitFile(f"it is larger than {limit} bytes")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise UnfitFile(f"it is larger than {limit} bytes")
    return data


def read_text(path: Path, limit: int = TEXT_LIMIT, encoding: str = "utf-8") -> str:
    """:func:`read_bytes`, decoded (UnicodeDecodeError when it is not ``encoding``)."""
    return read_bytes(path, limit).decode(encoding)


def reason(exc: OSError | UnicodeDecodeError) -> str:
    """Why a read failed, in words (``strerror`` for OS errors)."""
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return exc.strerror or str(exc)
