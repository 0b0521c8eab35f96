"""Fixtures shared by the unit tests."""

from __future__ import annotations

import importlib.util
import secrets
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from selfhost.paths import ANSIBLE_DIR


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


@pytest.fixture(scope="session")
def role_module() -> Callable[[str, str], ModuleType]:
    """``load(role, name)``: an Ansible module of a role's ``library/``, imported from
    its file (the roles' modules are not a package), so its functions can be tested."""
    def load(role: str, name: str) -> ModuleType:
        return _from_file(ANSIBLE_DIR / "roles" / role / "library" / f"{name}.py")

    return load


@pytest.fixture(scope="session")
def lookup_plugin() -> Callable[[str], ModuleType]:
    """``load(name)``: a lookup plugin of ``ansible/lookup_plugins/``, imported from its file."""
    return lambda name: _from_file(ANSIBLE_DIR / "lookup_plugins" / f"{name}.py")


def _from_file(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded
