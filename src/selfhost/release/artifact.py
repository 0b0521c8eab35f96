"""Checking a release tarball before anything of it reaches a host.

The tarball (gzip) holds exactly three members, in this order: the manifest,
its detached Ed25519 signature (:mod:`selfhost.ed25519`'s form, ``file`` naming
the manifest) and ``payload.tar``, whose sha256 and size the manifest states.
It is read once, as a stream and bounded: the signature is checked against the
trusted keys before the manifest is parsed further or the payload is read, the
payload is hashed while its members are checked (regular files and
directories only, relative paths without ``..``, no setuid bits, size and
count limits), and the whole file is hashed too, so the deployment can pin the
exact bytes it checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from selfhost import ed25519, inputs
from selfhost.release.manifest import (
    MANIFEST,
    MANIFEST_LIMIT,
    PAYLOAD,
    SIGNATURE,
    NotGenuine,
    ReleaseError,
    ReleaseManifest,
    parse_manifest,
)

SIGNATURE_LIMIT = 4096
#: the payload, unpacked, and the number of its members
PAYLOAD_LIMIT = 4 * 1024**3
MAX_MEMBERS = 100_000
_CHUNK = 1 << 20
_RESERVED = frozenset({MANIFEST, SIGNATURE, PAYLOAD})


@dataclass(frozen=True)
class VerifiedRelease:
    path: Path
    manifest: ReleaseManifest
    key_id: str
    #: of the whole tarball, so a deployment can refuse a file changed since
    sha256: str
    members: int


class _Hashing:
    """A read-only stream that hashes what is read through it, up to a limit."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self._raw, self._limit, self.size = raw, limit, 0
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size if size >= 0 else _CHUNK)
        self.size += len(data)
        if self.size > self._limit:
            raise ReleaseError(f"more than {self._limit} bytes")
        self.digest.update(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


def _kind(member: tarfile.TarInfo) -> str:
    for test, name in ((member.issym, "a symbolic link"), (member.islnk, "a hard link"),
                       (member.ischr, "a character device"), (member.isblk, "a block device"),
                       (member.isfifo, "a FIFO")):
        if test():
            return name
    return "not a regular file or directory"


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a payload member may not be unpacked on a host, or None."""
    name = member.name
    parts = PurePosixPath(name).parts
    if not name or name.startswith("/") or ".." in parts or "\\" in name:
        return "is outside the release directory (absolute or with ..)"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "has a control character in its name"
    if not (member.isreg() or member.isdir()):
        return f"is {_kind(member)} (only regular files and directories are allowed)"
    if member.mode & 0o7000:
        return "has a setuid, setgid or sticky bit"
    if member.mode & 0o002:
        return "is writable by everyone"
    if len(parts) == 1 and parts[0] in _RESERVED:
        return "has the name of a member of the release tarball itself"
    return None


def _public_keys(trusted: list[Path]) -> dict[str, Ed25519PublicKey]:
    keys = {}
    for path in trusted:
        key = ed25519.load_public_key(path)
        keys[ed25519.key_id(key)] = key
    return keys


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    if not member.isreg() or member.size > limit:
        raise ReleaseError(f"{member.name} is not a regular file of at most {limit} bytes")
    handle = tar.extractfile(member)
    assert handle is not None  # a regular member
    return handle.read(limit + 1)


def _check_signature(path: Path, manifest: bytes, signature: bytes,
                     keys: dict[str, Ed25519PublicKey], trust_hint: str) -> str:
    try:
        sig = ed25519.DetachedSignature.model_validate_json(signature)
        value = base64.b64decode(sig.value, validate=True)
    except (ValidationError, binascii.Error, ValueError):
        raise NotGenuine(f"{path}: {SIGNATURE} is not a signature written by selfhost "
                         "(rebuild the release with selfhost release build)") from None
    if sig.file != MANIFEST:
        raise NotGenuine(f"{path}: {SIGNATURE} signs {sig.file!r}, not {MANIFEST}")
    key = keys.get(sig.key_id)
    if key is None:
        raise NotGenuine(f"{path}: signed by the key {sig.key_id}, which is not trusted "
                         f"(trusted: {', '.join(sorted(keys))}); {trust_hint}")
    try:
        key.verify(value, manifest)
    except InvalidSignature:
        raise NotGenuine(f"{path}: the signature does not match {MANIFEST}: the manifest "
                         "was changed after it was signed, or the signature was altered "
                         "(do not deploy it; get the release again from the vendor)") from None
    return sig.key_id


def _check_payload(path: Path, tar: tarfile.TarFile, member: tarfile.TarInfo,
                   manifest: ReleaseManifest) -> int:
    if member.name != PAYLOAD or not member.isreg():
        raise ReleaseError(f"{path}: the third member is {member.name!r}, not the regular "
                           f"file {PAYLOAD}")
    raw = tar.extractfile(member)
    assert raw is not None
    stream = _Hashing(raw, PAYLOAD_LIMIT)
    names: set[str] = set()
    try:
        with tarfile.open(fileobj=cast(IO[bytes], stream), mode="r|") as inner:
            for entry in inner:
                if len(names) >= MAX_MEMBERS:
                    raise ReleaseError(f"{path}: {PAYLOAD} has more than {MAX_MEMBERS} "
                                       "members")
                if problem := member_problem(entry):
                    raise ReleaseError(f"{path}: {PAYLOAD}: the member {entry.name!r} "
                                       f"{problem}; the release is refused")
                name = entry.name.rstrip("/")
                if name in names:
                    raise ReleaseError(f"{path}: {PAYLOAD}: the member {name!r} appears "
                                       "twice")
                names.add(name)
        stream.drain()
    except tarfile.TarError as exc:
        raise ReleaseError(f"{path}: {PAYLOAD} is not a readable tar archive ({exc})") from None
    except ReleaseError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ReleaseError(f"{path}: {PAYLOAD} holds {exc}") from None
    if stream.digest.hexdigest() != manifest.payload.sha256 or stream.size != \
            manifest.payload.size:
        raise NotGenuine(f"{path}: {PAYLOAD} does not match the sha256 and size the signed "
                         "manifest states: the payload was changed after it was signed (do "
                         "not deploy it; get the release again from the vendor)")
    for argv, where in [(manifest.run, "run"),
                        *((m.run, f"migration {m.id}") for m in manifest.migrations)]:
        program = argv[0]
        if not program.startswith("/") and program.removeprefix("./") not in names:
            raise ReleaseError(f"{path}: {MANIFEST}: {where}: {program} is not a file of "
                               f"the payload (give a path inside the release, or an "
                               "absolute one)")
    return len(names)


def verify_release(path: Path, trusted: list[Path], *, trust_hint: str) -> VerifiedRelease:
    """The checked release at ``path``; raises :class:`NotGenuine` when it is not what
    a trusted key signed, :class:`ReleaseError` when it is no fit release at all.
    ``trust_hint`` says how to trust another key (it differs by caller)."""
    if not trusted:
        raise ReleaseError(f"{path}: no trusted key to check its signature with; "
                           f"{trust_hint}")
    keys = _public_keys(trusted)
    try:
        handle = inputs.open_regular(path)
    except FileNotFoundError:
        raise ReleaseError(f"{path} does not exist (check the path; relative paths in a "
                           "profile start at its directory)") from None
    except OSError as exc:
        raise ReleaseError(f"{path}: {inputs.reason(exc)} (give the release tarball)") \
            from None
    with handle:
        raw = _Hashing(handle, PAYLOAD_LIMIT + MANIFEST_LIMIT + SIGNATURE_LIMIT + (1 << 24))
        try:
            with tarfile.open(fileobj=cast(IO[bytes], raw), mode="r|gz") as tar:
                members = iter(tar)
                first = next(members, None)
                if first is None or first.name != MANIFEST:
                    raise ReleaseError(f"{path}: the first member is not {MANIFEST} (build "
                                       "releases with selfhost release build)")
                manifest_bytes = _read_member(tar, first, MANIFEST_LIMIT)
                second = next(members, None)
                if second is None or second.name != SIGNATURE:
                    raise NotGenuine(f"{path} is not signed (no {SIGNATURE} after the "
                                     f"manifest): build it with selfhost release build "
                                     "--sign-key KEY")
                key = _check_signature(path, manifest_bytes,
                                       _read_member(tar, second, SIGNATURE_LIMIT), keys,
                                       trust_hint)
                manifest = parse_manifest(manifest_bytes)
                third = next(members, None)
                if third is None:
                    raise ReleaseError(f"{path} has no {PAYLOAD}")
                count = _check_payload(path, tar, third, manifest)
                if (extra := next(members, None)) is not None:
                    raise ReleaseError(f"{path}: the member {extra.name!r} is not part of a "
                                       "release (only the manifest, its signature and "
                                       f"{PAYLOAD}); the release is refused")
            raw.drain()
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ReleaseError(f"{path} is not a readable gzip tarball ({exc})") from None
    return VerifiedRelease(path=path, manifest=manifest, key_id=key,
                           sha256=raw.digest.hexdigest(), members=count)


_cache: dict[tuple[object, ...], VerifiedRelease] = {}


def verified(path: Path, trusted: list[Path], *, trust_hint: str) -> VerifiedRelease:
    """:func:`verify_release`, once per unchanged file and key set in a process (one
    ``deploy`` loads the profile twice); the deployment pins the result's sha256."""
    try:
        st = os.stat(path)
        stamp: tuple[object, ...] = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        stamp = ()
    key = (str(path), stamp, tuple(str(p) for p in trusted))
    if stamp and key in _cache:
        return _cache[key]
    result = verify_release(path, trusted, trust_hint=trust_hint)
    if stamp:
        _cache[key] = result
    return result
