"""The encrypted secrets file: round trip, wrong keys, tampering, format."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from selfhost import secrets
from selfhost.errors import ExitCode, SecretsError

VALUES = {"database_password": "pw-database-0123", "openai_api_key": "sk-test-abcdef"}


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    return tmp_path / "acme.yaml"


def _store(profile: Path, data: bytes) -> None:
    secrets.secrets_path(profile).write_bytes(data)
    secrets.secrets_path(profile).chmod(0o600)


def test_secrets_live_beside_the_profile(profile: Path) -> None:
    assert secrets.secrets_path(profile) == profile.parent / "acme.secrets"


def test_passphrase_round_trip(profile: Path) -> None:
    _store(profile, secrets.seal(VALUES, passphrase="correct horse"))
    assert dict(secrets.load_secrets(profile, passphrase="correct horse")) == VALUES


def test_passphrase_from_environment(profile: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _store(profile, secrets.seal(VALUES, passphrase="from env"))
    monkeypatch.setenv("SELFHOST_PASSPHRASE", "from env")
    assert dict(secrets.load_secrets(profile)) == VALUES


def test_wrong_passphrase_is_a_secrets_error(profile: Path) -> None:
    _store(profile, secrets.seal(VALUES, passphrase="right"))
    with pytest.raises(SecretsError, match="wrong passphrase, or the file was altered"):
        secrets.load_secrets(profile, passphrase="wrong")


def test_key_file_round_trip(profile: Path, key_file: Path) -> None:
    _store(profile, secrets.seal(VALUES, key_file=key_file))
    assert dict(secrets.load_secrets(profile, key_file=key_file)) == VALUES


def test_wrong_key_file(profile: Path, key_file: Path, tmp_path: Path) -> None:
    _store(profile, secrets.seal(VALUES, key_file=key_file))
    other = tmp_path / "other.key"
    other.write_bytes(b"k" * 32)
    other.chmod(0o600)
    with pytest.raises(SecretsError, match="wrong key file"):
        secrets.load_secrets(profile, key_file=other)


def test_short_key_file_is_refused(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(b"x" * 8)
    short.chmod(0o600)
    with pytest.raises(SecretsError, match="fewer than 32 bytes"):
        secrets.seal(VALUES, key_file=short)


def test_secrets_error_exits_5() -> None:
    assert SecretsError("x").exit_code == ExitCode.SECRETS


TAMPERS = [
    ("ciphertext byte", lambda d: d[:-20] + bytes([d[-20] ^ 1]) + d[-19:]),
    ("tag byte", lambda d: d[:-1] + bytes([d[-1] ^ 1])),
    ("nonce byte", lambda d: d[:40] + bytes([d[40] ^ 1]) + d[41:]),
    ("names header", lambda d: d.replace(b"openai_api_key", b"openai_api_kez")),
    ("KDF parameter", lambda d: d[:14] + bytes([d[14] ^ 1]) + d[15:]),
]


@pytest.mark.parametrize("tamper", [pytest.param(t, id=i) for i, t in TAMPERS])
def test_tampering_is_detected(profile: Path, key_file: Path, tamper: object) -> None:
    sealed = secrets.seal(VALUES, key_file=key_file)
    _store(profile, tamper(sealed))  # type: ignore[operator]
    with pytest.raises(SecretsError):
        secrets.load_secrets(profile, key_file=key_file)


BROKEN = [
    ("not a secrets file", b"hello world, this is not it at all, no no no no no no"),
    ("truncated", b"SHSECRET\x01"),
    ("empty", b""),
]


@pytest.mark.parametrize("data", [pytest.param(d, id=i) for i, d in BROKEN])
def test_broken_file_is_a_clear_error(profile: Path, key_file: Path, data: bytes) -> None:
    _store(profile, data)
    with pytest.raises(SecretsError, match="not a selfhost secrets file or is damaged"):
        secrets.load_secrets(profile, key_file=key_file)


def test_future_version_names_the_version(profile: Path, key_file: Path) -> None:
    sealed = secrets.seal(VALUES, key_file=key_file)
    _store(profile, sealed[:8] + b"\x09" + sealed[9:])
    with pytest.raises(SecretsError, match="format version 9"):
        secrets.load_secrets(profile, key_file=key_file)


def test_missing_file(profile: Path, key_file: Path) -> None:
    with pytest.raises(SecretsError, match="run selfhost init"):
        secrets.load_secrets(profile, key_file=key_file)


def test_no_key_given(profile: Path, key_file: Path) -> None:
    _store(profile, secrets.seal(VALUES, key_file=key_file))
    with pytest.raises(SecretsError, match="locked with a key file"):
        secrets.load_secrets(profile)


def test_names_are_readable_without_a_key(profile: Path, key_file: Path) -> None:
    _store(profile, secrets.seal(VALUES, key_file=key_file))
    assert secrets.stored_names(profile) == sorted(VALUES)


def test_no_file_means_no_names(profile: Path) -> None:
    assert secrets.stored_names(profile) == []


def test_values_are_not_in_the_file(key_file: Path) -> None:
    sealed = secrets.seal(VALUES, key_file=key_file)
    assert not any(v.encode() in sealed for v in VALUES.values())


def test_repr_and_str_never_show_values() -> None:
    loaded = secrets.Secrets(VALUES)
    assert not any(v in repr(loaded) + str(loaded) for v in VALUES.values())


def test_missing_name_is_a_secrets_error_without_values() -> None:
    with pytest.raises(SecretsError, match="the secret backup_key is not stored"):
        secrets.Secrets(VALUES)["backup_key"]


def test_ca_key_is_an_ecdsa_p256_pem() -> None:
    key = serialization.load_pem_private_key(secrets.generate("ca_key").encode(), None)
    assert key.curve.name == "secp256r1"  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["database_password", "cache_password", "app_secret_key",
                                  "backup_key"])
def test_generated_secrets_are_long_and_fresh(name: str) -> None:
    first, second = secrets.generate(name), secrets.generate(name)
    assert (len(first) >= 32, first != second) == (True, True)


def test_env_name() -> None:
    assert secrets.env_name("openai_api_key") == "SELFHOST_OPENAI_API_KEY"
