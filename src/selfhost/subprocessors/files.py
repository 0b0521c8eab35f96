"""Writing output files whole or not at all, with a user message on failure."""

from __future__ import annotations

from pathlib import Path

from selfhost.atomic import write_atomic
from selfhost.errors import InvalidInput


def write_file(path: Path, data: bytes, *, mode: int = 0o644, durable: bool = True) -> None:
    """Write through a temporary file and a rename, so no reader sees half a file.

    ``durable=False`` skips the fsync: a batch writes thousands of regenerable
    files, and one fsync each would be most of its run time.
    """
    try:
        write_atomic(path, data, mode=mode, durable=durable)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot write the file ({exc.strerror}; check the "
                           "directory exists and is writable)") from None
