"""What a backup archive holds, and opening one: every member checked against the
manifest before anything uses it.

The payload is a tar stream: each member under its name, ``manifest.json`` last
(it lists every member's size and sha256, so it can only be written once they are
all in). :func:`open_backup` decrypts the whole archive into a private directory
and checks it; a restore starts only after it returned.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel, ConfigDict, ValidationError

from selfhost.backup import archive
from selfhost.errors import InvalidInput

MANIFEST = "manifest.json"
DATABASE_DUMP = "database.dump"
#: the profile and its encrypted secrets file as they were, and the controller's records
PROFILE_DIR = "controller/profile"
STATE_DIR = "controller/state"
#: the files the profile names by a path relative to its directory, at that path
PROFILE_FILES_DIR = "controller/profile/files"
#: ``hosts/<name>/config.tar``: the host's configuration directory and deployment record
HOSTS_DIR = "hosts"


class Member(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bytes: int
    sha256: str


class DatabaseInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str
    name: str
    #: pg_dump's archive format, as pg_restore reads it
    format: str = "custom"


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: str
    profile_fingerprint: str
    created: str
    tool_version: str
    profile_name: str
    database: DatabaseInfo | None
    hosts: list[str]
    members: dict[str, Member]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while block := data.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class Packer:
    """Adds files to the tar stream inside an archive writer, recording each in the
    manifest; :meth:`finish` writes the manifest and seals the last chunk."""

    def __init__(self, writer: archive.Writer) -> None:
        self._writer = writer
        self._tar = tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]  # noqa: SIM115
        self.members: dict[str, Member] = {}

    def add_file(self, name: str, path: Path) -> None:
        info = tarfile.TarInfo(name)
        info.size = path.stat().st_size
        info.mode = 0o600
        with path.open("rb") as data:
            self._tar.addfile(info, data)
        self.members[name] = Member(bytes=info.size, sha256=sha256_file(path))

    def add_bytes(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o600
        self._tar.addfile(info, io.BytesIO(data))
        self.members[name] = Member(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())

    def finish(self, manifest: Manifest) -> None:
        data = json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        info.mode = 0o600
        self._tar.addfile(info, io.BytesIO(data))
        self._tar.close()
        self._writer.close()


@dataclass(frozen=True)
class Opened:
    """An archive decrypted into ``directory`` and checked member by member."""

    header: archive.Header
    manifest: Manifest
    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / name


def _safe_name(path: Path, name: str) -> str:
    parts = Path(name).parts
    if not parts or name.startswith("/") or ".." in parts:
        raise archive.damaged(path, f"member name {name!r}")
    return name


def _extract(path: Path, source: BinaryIO, into: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    with tarfile.open(fileobj=source, mode="r|") as tar:
        for info in tar:
            name = _safe_name(path, info.name)
            if not info.isfile() or name in found:
                raise archive.damaged(path, f"unexpected member {name!r}")
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            data = tar.extractfile(info)
            assert data is not None
            with target.open("xb") as out:
                target.chmod(0o600)
                while block := data.read(1 << 20):
                    out.write(block)
            found[name] = target
    return found


def open_backup(path: Path, backup_key: str, secrets_file: Path, into: Path,
                customer_id: str) -> Opened:
    """Decrypt and check the archive at ``path`` into the private directory ``into``.

    Refuses (before decrypting anything) an archive of another customer, then a wrong
    key (:class:`SecretsError`), then any damage (:class:`InvalidInput`).
    """
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read the backup {path} ({exc.strerror or exc})") from None
    with stream:
        header, aad = archive.read_header(path, stream)
        refuse_other_customer(path, header, customer_id)
        reader = archive.Reader(path=path, stream=stream, header=header, aad=aad,
                                backup_key=backup_key)
        chunks = reader.chunks(secrets_file)
        try:
            found = _extract(path, archive.ChunkStream(chunks), into)  # type: ignore[arg-type]
        except tarfile.TarError as exc:
            raise archive.damaged(path, f"its contents are not a valid tar stream: {exc}") from None
        # The tar end may come before the last chunk; the rest must still authenticate.
        for _rest in chunks:
            pass
    return _checked(path, header, found, into)


def refuse_other_customer(path: Path, header: archive.Header, customer_id: str) -> None:
    if header.customer_id != customer_id:
        raise InvalidInput(
            f"{path} is a backup of customer {header.customer_id!r}, not of this profile's "
            f"customer {customer_id!r} (customer.id); nothing was changed. Restore it with "
            "that customer's profile")


def _checked(path: Path, header: archive.Header, found: dict[str, Path],
             into: Path) -> Opened:
    if MANIFEST not in found:
        raise archive.damaged(path, "it has no manifest")
    try:
        manifest = Manifest.model_validate_json(found.pop(MANIFEST).read_bytes())
    except ValidationError:
        raise archive.damaged(path, "its manifest is not valid") from None
    if (manifest.customer_id, manifest.profile_fingerprint) != (
            header.customer_id, header.profile_fingerprint):
        raise archive.damaged(path, "its manifest and header name different deployments")
    if set(found) != set(manifest.members):
        missing = sorted(set(manifest.members) - set(found))
        extra = sorted(set(found) - set(manifest.members))
        raise archive.damaged(path, f"members missing {missing}, unlisted {extra}")
    for name, member in manifest.members.items():
        target = found[name]
        if target.stat().st_size != member.bytes or sha256_file(target) != member.sha256:
            raise archive.damaged(path, f"{name} does not match its checksum in the manifest")
    return Opened(header=header, manifest=manifest, directory=into)
