"""Fixtures shared by the unit tests."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """A secrets key file: fast to derive from, unlike a scrypt passphrase."""
    path = tmp_path / "secrets.key"
    path.write_bytes(secrets.token_bytes(32))
    path.chmod(0o600)
    return path


@pytest.fixture(autouse=True)
def _no_selfhost_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own SELFHOST_* variables must not change what a test sees.
    import os

    for name in list(os.environ):
        if name.startswith("SELFHOST_") and name != "SELFHOST_FAIL_ON_SKIP":
            monkeypatch.delenv(name)
