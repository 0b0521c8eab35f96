"""The files subprocessor lists are written as (formats, key file names), and writing
them whole or not at all, with a user message on failure.

Light on purpose: the command line's options read these names at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from selfhost.atomic import write_atomic
from selfhost.errors import InvalidInput

Format = Literal["md", "html", "json"]
FORMATS: tuple[Format, ...] = ("md", "html", "json")
EXTENSIONS: dict[Format, str] = {"md": "md", "html": "html", "json": "json"}

#: ``selfhost keys generate``'s default file names
PRIVATE_KEY_FILE = "subprocessors-signing.key"
PUBLIC_KEY_FILE = "subprocessors-signing.pub"


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
