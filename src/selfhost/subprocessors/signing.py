"""Ed25519 signatures on subprocessor lists.

Keys and the detached form are :mod:`selfhost.ed25519`'s, shared with release
tarballs.

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
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from pydantic import ValidationError

from selfhost.ed25519 import (
    DetachedSignature,
    KeyPair,
    generate_keys,
    key_id,
    load_private_key,
    load_public_key,
    read_key_file,
    sign_detached,
)
from selfhost.errors import ChecksFailed
from selfhost.subprocessors.document import Signature, SubprocessorList, dump_json

SIGNATURE_SUFFIX = ".sig"

__all__ = ["DetachedSignature", "KeyPair", "Verified", "check_signature", "generate_keys",
           "key_id", "load_private_key", "load_public_key", "sign_detached",
           "sign_embedded", "signature_path"]


@dataclass(frozen=True)
class Verified:
    form: Literal["embedded", "detached"]
    key_id: str
    signature_file: Path | None


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
    data = read_key_file(path, "signed file")
    sig_path = signature_file or signature_path(path)
    if signature_file is not None or sig_path.exists():
        return _check_detached(path, data, sig_path, public)
    return _check_embedded(path, data, public)


def _check_detached(path: Path, data: bytes, sig_path: Path,
                    public: Ed25519PublicKey) -> Verified:
    try:
        sig = DetachedSignature.model_validate_json(read_key_file(sig_path, "signature file"))
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
