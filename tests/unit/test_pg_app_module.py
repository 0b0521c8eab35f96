"""The PostgreSQL role module's SCRAM-SHA-256 verifiers, in the form PostgreSQL stores."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from types import ModuleType

import pytest

SALT = bytes(range(16))


@pytest.fixture(scope="module")
def module(role_module: Callable[[str, str], ModuleType]) -> ModuleType:
    return role_module("postgresql", "selfhost_pg_app")


def _reference(password: str, salt: bytes, iterations: int) -> str:
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client = hmac.new(salted, b"Client Key", "sha256").digest()
    server = hmac.new(salted, b"Server Key", "sha256").digest()
    stored = hashlib.sha256(client).digest()
    enc = base64.b64encode
    return (f"SCRAM-SHA-256${iterations}:{enc(salt).decode()}${enc(stored).decode()}:"
            f"{enc(server).decode()}")


def test_verifier_has_postgresql_format(module: ModuleType) -> None:
    assert module.scram_verifier("pw/:@%", SALT, 4096) == _reference("pw/:@%", SALT, 4096)


def test_matching_password_is_recognised(module: ModuleType) -> None:
    assert module.matches("s3cret", module.scram_verifier("s3cret", SALT, 4096))


@pytest.mark.parametrize("stored", [
    None,
    "",
    "md5" + hashlib.md5(b"s3cretbackendchat").hexdigest(),
    "SCRAM-SHA-256$garbage",
])
def test_other_stored_forms_do_not_match(module: ModuleType, stored: str | None) -> None:
    assert not module.matches("s3cret", stored)


def test_other_password_does_not_match(module: ModuleType) -> None:
    assert not module.matches("other", module.scram_verifier("s3cret", SALT, 4096))


def test_iterations_are_read_from_the_stored_verifier(module: ModuleType) -> None:
    assert module.matches("s3cret", _reference("s3cret", SALT, 10000))
