"""The on-demand backup archive: one file, encrypted and authenticated, with a manifest.

File format, version 1 (integers big-endian)::

    offset  size  field
    0       8     magic  b"SHBACKUP"
    8       1     format version (1)
    9       4     length H of the header
    13      H     header: UTF-8 JSON (customer id, profile fingerprint, creation time,
                  tool version, HKDF salt, key check, chunk size)
    13+H    rest  chunks: 4-byte length N, then N bytes of AES-256-GCM ciphertext + tag

The payload (a tar stream: ``manifest.json`` first, then every member it lists
with its sha256) is cut into chunks of at most ``chunk_size`` bytes. The chunk
key is HKDF-SHA256 of the profile's ``backup_key`` secret (the key the on-host
dumps are encrypted with: one key for both kinds) and the header's random salt.
Chunk ``i`` has the nonce ``i`` (11 bytes) followed by 1 on the last chunk, else 0,
and the sha256 of magic, version and header as additional data: a changed header, a
dropped, reordered or altered chunk and a cut-off end each fail authentication.

The header is readable without the key, so an archive of another customer is
refused before any decryption, and ``key_check`` (an HMAC of a fixed label under a
second derived key) tells a wrong key apart from a damaged archive.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict, ValidationError

from selfhost.errors import InvalidInput, SecretsError

MAGIC = b"SHBACKUP"
VERSION = 1
SUFFIX = ".shbackup"
CHUNK_SIZE = 1 << 20
_PREFIX = struct.Struct(">8sBI")
_LEN = struct.Struct(">I")
_MAX_HEADER = 64 * 1024
_KEY_CHECK_LABEL = b"selfhost backup key check"
_TAG = 16


class Header(BaseModel):
    """What an archive says about itself before it is opened."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: str
    profile_fingerprint: str
    created: str
    tool_version: str
    salt: str
    key_check: str
    chunk_size: int


def _keys(backup_key: str, salt: bytes) -> tuple[bytes, bytes]:
    material = HKDF(algorithm=hashes.SHA256(), length=64, salt=salt,
                    info=b"selfhost backup archive v1").derive(backup_key.encode())
    return material[:32], material[32:]


def _key_check(check_key: bytes) -> str:
    return hmac.new(check_key, _KEY_CHECK_LABEL, hashlib.sha256).hexdigest()


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _prefix(header_bytes: bytes) -> bytes:
    return _PREFIX.pack(MAGIC, VERSION, len(header_bytes)) + header_bytes


class Writer:
    """Encrypts a payload stream into ``out``, one chunk at a time (``write``, ``close``)."""

    def __init__(self, out: BinaryIO, backup_key: str, *, customer_id: str,
                 profile_fingerprint: str, created: str, tool_version: str) -> None:
        salt = os.urandom(16)
        enc_key, check_key = _keys(backup_key, salt)
        header = Header(customer_id=customer_id, profile_fingerprint=profile_fingerprint,
                        created=created, tool_version=tool_version, salt=salt.hex(),
                        key_check=_key_check(check_key), chunk_size=CHUNK_SIZE)
        prefix = _prefix(json.dumps(header.model_dump(), sort_keys=True).encode())
        self._out, self._aead = out, AESGCM(enc_key)
        self._aad = hashlib.sha256(prefix).digest()
        self._buffer, self._index = bytearray(), 0
        out.write(prefix)

    def _emit(self, data: bytes, last: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._index, last), data, self._aad)
        self._out.write(_LEN.pack(len(sealed)) + sealed)
        self._index += 1

    def write(self, data: bytes) -> int:
        self._buffer += data
        # Keep at least one byte back: the last chunk must be sealed as the last.
        while len(self._buffer) > CHUNK_SIZE:
            self._emit(bytes(self._buffer[:CHUNK_SIZE]), last=False)
            del self._buffer[:CHUNK_SIZE]
        return len(data)

    def close(self) -> None:
        self._emit(bytes(self._buffer), last=True)
        self._buffer.clear()


def damaged(path: Path, why: str) -> InvalidInput:
    return InvalidInput(f"{path}: the backup is damaged or was altered ({why}); nothing "
                        "was changed. Use another copy of the backup")


def read_header(path: Path, stream: BinaryIO) -> tuple[Header, bytes]:
    """The header of the archive ``stream`` (``path`` for messages) and its AAD digest."""
    fixed = stream.read(_PREFIX.size)
    if len(fixed) < _PREFIX.size or fixed[:8] != MAGIC:
        raise InvalidInput(f"{path} is not a selfhost backup (no {MAGIC.decode()} header); "
                           "give a file written by `selfhost backup`")
    _magic, version, size = _PREFIX.unpack(fixed)
    if version != VERSION:
        raise InvalidInput(f"{path}: backup format version {version} is not supported "
                           f"(this selfhost reads version {VERSION}); use a matching selfhost")
    if size > _MAX_HEADER:
        raise damaged(path, f"header length {size}")
    raw = stream.read(size)
    if len(raw) < size:
        raise damaged(path, "it ends inside its header")
    try:
        header = Header.model_validate_json(raw)
    except ValidationError:
        raise damaged(path, "its header is not valid") from None
    return header, hashlib.sha256(fixed + raw).digest()


def header_of(path: Path) -> Header:
    try:
        with path.open("rb") as stream:
            return read_header(path, stream)[0]
    except OSError as exc:
        raise InvalidInput(f"cannot read the backup {path} ({exc.strerror or exc})") from None


@dataclass
class Reader:
    """Decrypts and authenticates an archive chunk by chunk (``chunks()``)."""

    path: Path
    stream: BinaryIO
    header: Header
    aad: bytes
    backup_key: str

    def check_key(self, secrets_file: Path) -> AESGCM:
        try:
            salt = bytes.fromhex(self.header.salt)
        except ValueError:
            raise damaged(self.path, "its header salt is not hex") from None
        enc_key, check_key = _keys(self.backup_key, salt)
        if not hmac.compare_digest(_key_check(check_key), self.header.key_check):
            raise SecretsError(
                f"{self.path}: the backup key in {secrets_file} does not open this backup "
                "(it was made with another backup key); nothing was changed. Restore with "
                "the profile and secrets file the backup was made from")
        return AESGCM(enc_key)

    def chunks(self, secrets_file: Path) -> Iterator[bytes]:
        aead = self.check_key(secrets_file)
        limit = self.header.chunk_size + _TAG
        index = 0
        while True:
            raw_len = self.stream.read(_LEN.size)
            if len(raw_len) < _LEN.size:
                raise damaged(self.path, "it is truncated: its last part is missing")
            (size,) = _LEN.unpack(raw_len)
            if size < _TAG or size > limit:
                raise damaged(self.path, f"part {index} has an impossible length")
            sealed = self.stream.read(size)
            if len(sealed) < size:
                raise damaged(self.path, f"it is truncated inside part {index}")
            last = False
            try:
                data = aead.decrypt(_nonce(index, False), sealed, self.aad)
            except InvalidTag:
                try:
                    data = aead.decrypt(_nonce(index, True), sealed, self.aad)
                    last = True
                except InvalidTag:
                    raise damaged(self.path, f"part {index} fails authentication") from None
            yield data
            index += 1
            if last:
                if self.stream.read(1):
                    raise damaged(self.path, "data follows its last part")
                return


class ChunkStream:
    """A read-only file object over decrypted chunks, for :mod:`tarfile`'s stream mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._buffer = chunks, bytearray()

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out
