"""A customer's profile in a directory of its own, for the archive and notice tests."""

from __future__ import annotations

import shutil
from pathlib import Path


def customer_profile(tmp_path: Path, source: Path) -> Path:
    """A copy of ``source`` in a directory of its own, where selfhost keeps the
    customer's state (``.selfhost/``) beside it."""
    path = tmp_path / "customer" / "profile.yaml"
    path.parent.mkdir()
    shutil.copy(source, path)
    return path
