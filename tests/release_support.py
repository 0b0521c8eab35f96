"""Releases for tests: the contract probe app in versions v1 and v2, a v2 whose
migration fails and a v2 whose health check fails, each a signed tarball made by
``selfhost release build``; and raw tarballs with chosen members, to tamper with.

v1 migrates the probe's schema on PostgreSQL to 1, v2 to 2 (a real
``ALTER TABLE``); each runs the probe with ``--release-version`` and
``--schema-version``, so ``/healthz`` reports the release and the schema it
finds, and answers 503 while the schema is not the one the release needs.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from selfhost.ed25519 import generate_keys, load_private_key, sign_detached
from selfhost.paths import ANSIBLE_DIR
from selfhost.release.build import build_release

PROBE_DIR = ANSIBLE_DIR / "roles" / "app" / "files"
PROBE_FILES = ("contract_probe.py", "contract_probe_checks.py", "contract_probe_migrate.py")
PYTHON = "/usr/bin/python3"

#: run on a guest with ``python3 -c``: the app's /healthz as JSON {status, report}
HEALTHZ = """
import json, urllib.error, urllib.request
try:
    answer = urllib.request.urlopen("http://127.0.0.1:8000/healthz", timeout=20)
    status, body = answer.status, answer.read()
except urllib.error.HTTPError as exc:
    status, body = exc.code, exc.read()
print(json.dumps({"status": status, "report": json.loads(body)}))
"""

Kind = Literal["v1", "v2", "v2-broken-migration", "v2-unhealthy"]
KINDS: tuple[Kind, ...] = ("v1", "v2", "v2-broken-migration", "v2-unhealthy")


@dataclass(frozen=True)
class Keys:
    private: Path
    public: Path


def make_keys(directory: Path, name: str = "vendor") -> Keys:
    pair = generate_keys(directory / f"{name}.key", directory / f"{name}.pub")
    return Keys(private=pair.private_key, public=pair.public_key)


@dataclass(frozen=True)
class ProbeVersion:
    version: str
    #: the schema the migration brings the database to
    migrates_to: int
    #: the schema the app needs to answer 200 on /healthz
    needs_schema: int
    fail_migration: bool = False


VERSIONS: dict[Kind, ProbeVersion] = {
    "v1": ProbeVersion("1.0", 1, 1),
    "v2": ProbeVersion("2.0", 2, 2),
    "v2-broken-migration": ProbeVersion("2.0", 2, 2, fail_migration=True),
    # migrates fine, then needs a schema no migration makes: its health check fails
    "v2-unhealthy": ProbeVersion("2.0", 2, 3),
}


def description(kind: Kind) -> dict[str, object]:
    """The ``selfhost-release.json`` a vendor writes beside the payload."""
    spec = VERSIONS[kind]
    migrate = [PYTHON, "contract_probe_migrate.py", "--to", str(spec.migrates_to)]
    if spec.fail_migration:
        migrate.append("--fail")
    return {
        "name": "contract-probe",
        "run": [PYTHON, "contract_probe.py", "--release-version", spec.version,
                "--schema-version", str(spec.needs_schema)],
        "notify": True,
        "debian_packages": ["python3", "python3-psycopg2", "python3-redis"],
        "upgrade_from": [] if kind == "v1" else ["1.0"],
        "health": {"path": "/healthz", "timeout": 60},
        "migrations": [{"id": f"schema-{spec.migrates_to}", "run": migrate, "timeout": 120}],
    }


def probe_source(directory: Path, kind: Kind) -> Path:
    """The directory ``selfhost release build`` packs for ``kind``."""
    directory.mkdir(parents=True)
    for name in PROBE_FILES:
        shutil.copyfile(PROBE_DIR / name, directory / name)
    (directory / "selfhost-release.json").write_text(json.dumps(description(kind), indent=2))
    return directory


def probe_release(work: Path, kind: Kind, keys: Keys) -> Path:
    """A signed release tarball of the probe app as ``kind``."""
    source = probe_source(work / f"src-{kind}", kind)
    return build_release(source, VERSIONS[kind].version, keys.private,
                         work / f"contract-probe-{kind}.tar.gz").path


# -- raw tarballs ----------------------------------------------------------------------

def members(tarball: Path) -> list[tuple[str, bytes]]:
    """The (name, bytes) of each regular member, in order."""
    with tarfile.open(tarball, "r:gz") as tar:
        out = []
        for member in tar:
            handle = tar.extractfile(member)
            out.append((member.name, handle.read() if handle else b""))
        return out


def write_tarball(path: Path, entries: list[tuple[str, bytes]]) -> Path:
    """A gzip tarball of (name, bytes) regular members, in this order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, body in entries:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(body))
    path.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
    return path

def signed_tarball(path: Path, payload: bytes, keys: Keys, **fields: object) -> Path:
    """A release whose manifest states ``payload``'s real digest and is signed with
    ``keys``: a vendor that signed whatever ``payload`` holds."""
    manifest: dict[str, object] = {
        "format": 2, "name": "backend-chat", "version": "1.0", "run": ["/bin/true"],
        "payload": {"file": "payload.tar", "sha256": hashlib.sha256(payload).hexdigest(),
                    "size": len(payload)}, **fields}
    data = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    signature = sign_detached(data, "selfhost-release.json", load_private_key(keys.private))
    return write_tarball(path, [("selfhost-release.json", data),
                                ("selfhost-release.sig", signature), ("payload.tar", payload)])


def tar_bytes(entries: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> bytes:
    """An uncompressed tar of ``entries`` (a payload with chosen members)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            body = (data or {}).get(entry.name, b"")
            if entry.isreg():
                entry.size = len(body)
            tar.addfile(entry, io.BytesIO(body) if entry.isreg() else None)
    return buffer.getvalue()
