"""Ed25519 keys and detached signatures, shared by subprocessor lists and releases.

Keys are PEM files: the private key PKCS#8 (unencrypted, mode 0600; a key
readable by group or others is refused), the public key SubjectPublicKeyInfo.
A key is named by its ``key_id``: ``sha256:`` + hex digest of the raw 32-byte
public key. A detached signature is a JSON object ``{"algorithm": "ed25519",
"covers": "file-bytes", "file": name, "key_id": ..., "value": base64}`` whose
signature covers the exact bytes of the file it names.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from pydantic import BaseModel, ConfigDict

from selfhost import inputs
from selfhost.atomic import write_atomic
from selfhost.errors import InvalidInput


class DetachedSignature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    algorithm: Literal["ed25519"]
    covers: Literal["file-bytes"]
    file: str
    key_id: str
    value: str


@dataclass(frozen=True)
class KeyPair:
    private_key: Path
    public_key: Path
    key_id: str


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _write(path: Path, data: bytes, mode: int) -> None:
    try:
        write_atomic(path, data, mode=mode)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot write the file ({exc.strerror}; check the "
                           "directory exists and is writable)") from None


def generate_keys(private_path: Path, public_path: Path, *, force: bool = False) -> KeyPair:
    """A new key pair; the private key file is written with mode 0600."""
    for path in (private_path, public_path):
        if path.exists() and not force:
            raise InvalidInput(f"{path} already exists (choose another path, or pass "
                               "--force to replace it)")
        if not path.parent.is_dir():
            raise InvalidInput(f"{path.parent} is not a directory (create it first)")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    _write(private_path, private_pem, 0o600)
    _write(public_path, public_pem, 0o644)
    return KeyPair(private_key=private_path, public_key=public_path,
                   key_id=key_id(key.public_key()))


def read_key_file(path: Path, what: str) -> bytes:
    try:
        return inputs.read_bytes(path, inputs.PEM_LIMIT)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the {what} ({exc.strerror})") from None


def load_private_key(path: Path) -> Ed25519PrivateKey:
    data = read_key_file(path, "private key")
    mode = os.stat(path).st_mode & 0o777
    if mode & 0o077:
        raise InvalidInput(f"{path}: the private key is readable by others (mode "
                           f"{mode:04o}; run chmod 600 {path})")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{path}: not an unencrypted PEM private key ({exc}); create "
                           "one with selfhost keys generate") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(f"{path}: not an Ed25519 key (create one with selfhost keys "
                           "generate)")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    data = read_key_file(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{path}: not a PEM public key ({exc}); use the .pub file "
                           "written by selfhost keys generate") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput(f"{path}: not an Ed25519 public key (use the .pub file written "
                           "by selfhost keys generate)")
    return key


def sign_detached(data: bytes, file_name: str, key: Ed25519PrivateKey) -> bytes:
    """The JSON of a detached signature over ``data``, the bytes of ``file_name``."""
    sig = DetachedSignature(algorithm="ed25519", covers="file-bytes", file=file_name,
                            key_id=key_id(key.public_key()),
                            value=base64.b64encode(key.sign(data)).decode("ascii"))
    return (json.dumps(sig.model_dump(mode="json"), indent=2, sort_keys=True,
                       ensure_ascii=False) + "\n").encode("utf-8")
