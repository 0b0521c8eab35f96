"""``selfhost release build``: a signed release tarball from a directory.

The directory holds the payload and, at its top, ``selfhost-release.json``
with every manifest field but ``format``, ``version`` and ``payload``, which the
build writes. The bytes depend only on the inputs: members sorted by name,
mtime 0, owner root (0/0), modes 0755 (directories and executables) or 0644,
gzip without a name or time stamp, and Ed25519 signatures are deterministic.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from selfhost import ed25519, inputs
from selfhost.release.artifact import MAX_MEMBERS, PAYLOAD_LIMIT, member_problem
from selfhost.release.manifest import (
    FORMAT,
    MANIFEST,
    MANIFEST_LIMIT,
    PAYLOAD,
    SIGNATURE,
    ReleaseError,
    ReleaseManifest,
    dump_manifest,
    load_json,
    validate_manifest,
)

_WRITTEN_BY_BUILD = ("format", "version", "payload")


@dataclass(frozen=True)
class Built:
    path: Path
    manifest: ReleaseManifest
    key_id: str
    sha256: str


def _info(name: str, *, directory: bool = False, size: int = 0,
          executable: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory or executable else 0o644
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _payload_files(source: Path) -> list[tuple[str, Path, os.stat_result]]:
    found: list[tuple[str, Path, os.stat_result]] = []
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames.sort()
        for entry in sorted(dirnames + filenames):
            full = Path(dirpath) / entry
            name = full.relative_to(source).as_posix()
            if name == MANIFEST:
                continue
            st = full.lstat()
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                raise ReleaseError(f"{full}: only regular files and directories go into a "
                                   "release (replace the link or special file with a copy)")
            found.append((name, full, st))
    return sorted(found)


def _write_payload(source: Path, out: IO[bytes]) -> list[str]:
    files = _payload_files(source)
    if len(files) > MAX_MEMBERS:
        raise ReleaseError(f"{source}: more than {MAX_MEMBERS} files")
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, full, st in files:
            is_dir = stat.S_ISDIR(st.st_mode)
            info = _info(name, directory=is_dir, size=0 if is_dir else st.st_size,
                         executable=bool(st.st_mode & 0o111))
            if problem := member_problem(info):
                raise ReleaseError(f"{full}: {problem} (rename it)")
            if is_dir:
                tar.addfile(info)
                continue
            with full.open("rb") as handle:
                tar.addfile(info, handle)
    return [name for name, _, _ in files]


def _description(source: Path) -> dict[str, object]:
    path = source / MANIFEST
    try:
        data = inputs.read_bytes(path, MANIFEST_LIMIT)
    except FileNotFoundError:
        raise ReleaseError(f"{path} does not exist (write the release's run command, "
                           "migrations and health check there; see README, Releases)") from None
    except OSError as exc:
        raise ReleaseError(f"{path}: cannot read it ({inputs.reason(exc)})") from None
    fields = load_json(data, str(path))
    for key in _WRITTEN_BY_BUILD:
        if key in fields:
            raise ReleaseError(f"{path}: {key}: selfhost release build writes it (remove "
                               "it)")
    return fields


def build_release(source: Path, version: str, sign_key: Path,
                  output: Path | None = None) -> Built:
    """Write the signed release of ``source`` at ``version``; nothing is left behind
    on failure."""
    if not source.is_dir():
        raise ReleaseError(f"{source} is not a directory (give the directory that holds "
                           f"the release's files and its {MANIFEST})")
    fields = _description(source)
    key = ed25519.load_private_key(sign_key)
    where = str(source / MANIFEST)
    # the version is checked before the payload is packed
    validate_manifest({**fields, "format": FORMAT, "version": version,
                       "payload": {"sha256": "0" * 64, "size": 0}}, where)
    with tempfile.TemporaryFile() as payload:
        names = _write_payload(source, cast(IO[bytes], payload))
        size = payload.tell()
        if size > PAYLOAD_LIMIT:
            raise ReleaseError(f"{source}: the payload is larger than {PAYLOAD_LIMIT} bytes")
        payload.seek(0)
        digest = hashlib.file_digest(payload, "sha256").hexdigest()
        manifest = validate_manifest({**fields, "format": FORMAT, "version": version,
                                      "payload": {"sha256": digest, "size": size}}, where)
        for program in [manifest.run[0], *(m.run[0] for m in manifest.migrations)]:
            if not program.startswith("/") and program.removeprefix("./") not in names:
                raise ReleaseError(f"{where}: {program} is not a file in {source} (give a "
                                   "path inside the release, or an absolute one)")
        target = output or Path(f"{manifest.name}-{version}.tar.gz")
        manifest_bytes = dump_manifest(manifest)
        signature = ed25519.sign_detached(manifest_bytes, MANIFEST, key)
        payload.seek(0)
        sha256 = _write_tarball(target, manifest_bytes, signature, payload, size)
    return Built(path=target, manifest=manifest, key_id=ed25519.key_id(key.public_key()),
                 sha256=sha256)


def _write_tarball(target: Path, manifest: bytes, signature: bytes, payload: IO[bytes],
                   size: int) -> str:
    if not target.parent.is_dir():
        raise ReleaseError(f"{target.parent} is not a directory (create it first)")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o644)
            with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz, \
                    tarfile.open(fileobj=cast(IO[bytes], gz), mode="w",
                                 format=tarfile.PAX_FORMAT) as tar:
                for name, data in ((MANIFEST, manifest), (SIGNATURE, signature)):
                    tar.addfile(_info(name, size=len(data)), io.BytesIO(data))
                tar.addfile(_info(PAYLOAD, size=size), payload)
            out.flush()
            os.fsync(out.fileno())
        with open(tmp, "rb") as done:
            sha256 = hashlib.file_digest(done, "sha256").hexdigest()
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ReleaseError(f"{target}: cannot write the release ({exc.strerror or exc})") \
            from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return sha256
