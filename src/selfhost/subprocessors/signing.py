"""Ed25519 signatures on subprocessor lists.

Keys are PEM files: the private key PKCS#8 (unencrypted, mode 0600; a key
readable by group or others is refused), the public key SubjectPublicKeyInfo.
A key is named by its ``key_id``: ``sha256:`` + hex digest of the raw 32-byte
public key.

Two forms:

* **embedded** (JSON only): the list's JSON object gets a ``signature`` member
  ``{"algorithm": "ed25519", "covers": "canonical-json-without-signature",
  "key_id": ..., "value": base64}``. The signature covers the canonical bytes
  of the object *without* ``signature``: UTF-8 JSON, keys sorted, separators
  ``,`` and ``:`` (no whitespace), non-ASCII characters unescaped. Because the
  file must also be exactly the form ``render`` writes (two-space indent,
  sorted keys, one final newline), a change to any byte of it fails the check.
* **detached** (any format): ``FILE.sig`` beside ``FILE``, a JSON object
  ``{"algorithm": "ed25519", "covers": "file-bytes", "file": name, "key_id": ...,
  "value": base64}`` whose signature covers the exact bytes of ``FILE``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from pydantic import BaseModel, ConfigDict, ValidationError

from selfhost import inputs
from selfhost.errors import ChecksFailed, InvalidInput
from selfhost.subprocessors.document import Signature, SubprocessorList, dump_json
from selfhost.subprocessors.files import write_file

SIGNATURE_SUFFIX = ".sig"


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


@dataclass(frozen=True)
class Verified:
    form: Literal["embedded", "detached"]
    key_id: str
    signature_file: Path | None


# -- keys ----------------------------------------------------------------------------

def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


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
    write_file(private_path, private_pem, mode=0o600)
    write_file(public_path, public_pem, mode=0o644)
    return KeyPair(private_key=private_path, public_key=public_path,
                   key_id=key_id(key.public_key()))


def _read(path: Path, what: str) -> bytes:
    try:
        return inputs.read_bytes(path, inputs.PEM_LIMIT)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the {what} ({exc.strerror})") from None


def load_private_key(path: Path) -> Ed25519PrivateKey:
    data = _read(path, "private key")
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
    data = _read(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{path}: not a PEM public key ({exc}); use the .pub file "
                           "written by selfhost keys generate") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput(f"{path}: not an Ed25519 public key (use the .pub file written "
                           "by selfhost keys generate)")
    return key


# -- signing -------------------------------------------------------------------------

def canonical_bytes(payload: dict[str, Any]) -> bytes:
    """The bytes an embedded signature covers (see the module documentation)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def sign_embedded(doc: SubprocessorList, key: Ed25519PrivateKey) -> SubprocessorList:
    value = key.sign(canonical_bytes(doc.payload()))
    signature = Signature(algorithm="ed25519", covers="canonical-json-without-signature",
                          key_id=key_id(key.public_key()),
                          value=base64.b64encode(value).decode("ascii"))
    return doc.model_copy(update={"signature": signature})


def sign_detached(data: bytes, file_name: str, key: Ed25519PrivateKey) -> bytes:
    """The contents of the ``.sig`` file for a file holding ``data``."""
    sig = DetachedSignature(algorithm="ed25519", covers="file-bytes", file=file_name,
                            key_id=key_id(key.public_key()),
                            value=base64.b64encode(key.sign(data)).decode("ascii"))
    return dump_json(sig.model_dump(mode="json")).encode("utf-8")


def signature_path(path: Path) -> Path:
    return path.with_name(path.name + SIGNATURE_SUFFIX)


# -- checking ------------------------------------------------------------------------

def _bad(path: Path, why: str) -> ChecksFailed:
    return ChecksFailed(f"{path}: signature check FAILED: {why}")


def _decode(value: str, path: Path) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(path, "the signature value is not base64") from None


def _verify(public: Ed25519PublicKey, signature: bytes, data: bytes, *, path: Path,
            signer: str, what: str) -> None:
    if signer != key_id(public):
        raise _bad(path, f"signed with key {signer}, not with the given public key "
                   f"{key_id(public)}")
    try:
        public.verify(signature, data)
    except InvalidSignature:
        raise _bad(path, f"{what} changed after it was signed (or the signature was "
                   "altered); do not trust this file") from None


def check_signature(path: Path, public_key: Path,
                    signature_file: Path | None = None) -> Verified:
    """Raise :class:`ChecksFailed` unless ``path`` is exactly what was signed.

    The detached form is used when ``signature_file`` is given or ``PATH.sig``
    exists; otherwise the signature must be embedded in the JSON.
    """
    public = load_public_key(public_key)
    data = _read(path, "signed file")
    sig_path = signature_file or signature_path(path)
    if signature_file is not None or sig_path.exists():
        return _check_detached(path, data, sig_path, public)
    return _check_embedded(path, data, public)


def _check_detached(path: Path, data: bytes, sig_path: Path,
                    public: Ed25519PublicKey) -> Verified:
    try:
        sig = DetachedSignature.model_validate_json(_read(sig_path, "signature file"))
    except ValidationError:
        raise _bad(sig_path, "not a signature file written by selfhost (expected JSON with "
                   "algorithm, covers, file, key_id, value)") from None
    _verify(public, _decode(sig.value, sig_path), data, path=path, signer=sig.key_id,
            what="the file")
    return Verified(form="detached", key_id=sig.key_id, signature_file=sig_path)


def _check_embedded(path: Path, data: bytes, public: Ed25519PublicKey) -> Verified:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _bad(path, f"no {SIGNATURE_SUFFIX} file beside it and not valid JSON, so it "
                   "carries no embedded signature (was a byte changed?)") from None
    raw = obj.pop("signature", None) if isinstance(obj, dict) else None
    if raw is None:
        raise _bad(path, f"no embedded signature and no {path.name}{SIGNATURE_SUFFIX} "
                   "beside it (render with --sign-key)")
    try:
        sig = Signature.model_validate(raw)
    except ValidationError:
        raise _bad(path, "the embedded signature object is malformed") from None
    _verify(public, _decode(sig.value, path), canonical_bytes(obj), path=path,
            signer=sig.key_id, what="the content")
    obj["signature"] = raw
    if dump_json(obj).encode("utf-8") != data:
        raise _bad(path, "the content is intact but the file's bytes were changed "
                   "(whitespace or key order differs from what was signed)")
    return Verified(form="embedded", key_id=sig.key_id, signature_file=None)
