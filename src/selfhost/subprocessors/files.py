"""Writing output files whole or not at all, with a user message on failure."""

from __future__ import annotations

import os
from pathlib import Path

from selfhost.errors import InvalidInput
from selfhost.profile_io import write_atomic


def write_file(path: Path, data: bytes, *, mode: int = 0o644, durable: bool = True) -> None:
    """Write through a temporary file and a rename, so no reader sees half a file.

    ``durable=False`` skips the fsync: a batch writes thousands of regenerable
    files, and one fsync each would be most of its run time.
    """
    try:
        if durable:
            write_atomic(path, data, mode=mode)
            return
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot write the file ({exc.strerror}; check the "
                           "directory exists and is writable)") from None
