"""The backup archive: a round trip, and each way a bad archive is refused."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from selfhost.backup import archive, contents
from selfhost.errors import InvalidInput, SecretsError

KEY = "k" * 43
SECRETS = Path("acme.secrets")


def _write(path: Path, members: dict[str, bytes], customer: str = "acme",
           key: str = KEY) -> None:
    with path.open("wb") as out:
        writer = archive.Writer(out, key, customer_id=customer, profile_fingerprint="sha256:x",
                                created="2026-12-02T10:00:00+00:00", tool_version="0.1.0")
        packer = contents.Packer(writer)
        for name, data in members.items():
            packer.add_bytes(name, data)
        packer.finish(contents.Manifest(
            customer_id=customer, profile_fingerprint="sha256:x",
            created="2026-12-02T10:00:00+00:00", tool_version="0.1.0",
            profile_name="acme.yaml", database=None, hosts=["app-1"],
            members=packer.members))


@pytest.fixture
def made(tmp_path: Path) -> Path:
    path = tmp_path / "a.shbackup"
    # Bigger than one chunk, so chunk order and the last-chunk flag matter.
    _write(path, {contents.DATABASE_DUMP: os.urandom(archive.CHUNK_SIZE + 5000),
                  "hosts/app-1/config.tar": b"config"})
    return path


def _open(path: Path, into: Path, key: str = KEY, customer: str = "acme") -> contents.Opened:
    into.mkdir()
    return contents.open_backup(path, key, SECRETS, into, customer)


def test_round_trip_restores_every_member(made: Path, tmp_path: Path) -> None:
    opened = _open(made, tmp_path / "out")
    assert opened.path("hosts/app-1/config.tar").read_bytes() == b"config"
    assert opened.path(contents.DATABASE_DUMP).stat().st_size == archive.CHUNK_SIZE + 5000
    assert opened.manifest.hosts == ["app-1"]


def test_payload_is_not_in_plaintext(tmp_path: Path) -> None:
    path = tmp_path / "p.shbackup"
    _write(path, {"x": b"very-recognisable-canary-value"})
    assert b"very-recognisable-canary-value" not in path.read_bytes()


def test_wrong_key_is_a_secrets_error(made: Path, tmp_path: Path) -> None:
    with pytest.raises(SecretsError, match="does not open this backup"):
        _open(made, tmp_path / "out", key="another-key-" * 4)


def test_other_customer_is_refused_before_decrypting(made: Path, tmp_path: Path) -> None:
    # The wrong key too: the customer check must come first.
    with pytest.raises(InvalidInput, match="backup of customer 'acme'"):
        _open(made, tmp_path / "out", key="x", customer="globex")


@pytest.mark.parametrize("cut", [1, 100, archive.CHUNK_SIZE])
def test_truncated_archive_is_refused(made: Path, tmp_path: Path, cut: int) -> None:
    data = made.read_bytes()
    made.write_bytes(data[:-cut])
    with pytest.raises(InvalidInput, match="truncated"):
        _open(made, tmp_path / "out")


def test_dropping_the_last_chunk_is_refused(made: Path, tmp_path: Path) -> None:
    stream = io.BytesIO(made.read_bytes())
    _header, _aad = archive.read_header(made, stream)
    start = stream.tell()
    size = int.from_bytes(stream.read(4), "big")
    first_end = start + 4 + size
    made.write_bytes(made.read_bytes()[:first_end])
    with pytest.raises(InvalidInput, match="truncated"):
        _open(made, tmp_path / "out")


@pytest.mark.parametrize("where", [0.5, 0.99])
def test_flipped_byte_is_refused(made: Path, tmp_path: Path, where: float) -> None:
    data = bytearray(made.read_bytes())
    data[int(len(data) * where)] ^= 0x01
    made.write_bytes(bytes(data))
    with pytest.raises(InvalidInput, match="fails authentication"):
        _open(made, tmp_path / "out")


def test_altered_header_is_refused(made: Path, tmp_path: Path) -> None:
    data = made.read_bytes().replace(b"sha256:x", b"sha256:y", 1)
    made.write_bytes(data)
    with pytest.raises(InvalidInput, match="fails authentication"):
        _open(made, tmp_path / "out")


def test_not_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "x.shbackup"
    path.write_bytes(b"hello")
    with pytest.raises(InvalidInput, match="is not a selfhost backup"):
        _open(path, tmp_path / "out")
