"""``selfhost backup``: one encrypted archive of what a deployment cannot rebuild.

The database (``pg_dump --format=custom``, one consistent snapshot, streamed over
ssh), each host's configuration directory with its deployment record, and on the
controller the profile, its encrypted secrets file and the state beside it (the
record, the deployed list, the internal CA's certificates). :func:`backup_list`
shows these archives and the daily dumps the backup role keeps on the database host.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from selfhost import __version__, paths
from selfhost.backup import archive, contents, remote
from selfhost.errors import InvalidInput
from selfhost.profile_checks import named_files
from selfhost.profile_checks import resolve as resolve_named
from selfhost.profile_io import load_profile
from selfhost.secrets import load_secrets, secrets_path
from selfhost.targets.service import Deployment, SshTarget, resolve

BACKUP_DIR = "backups"
_STAMP = "%Y%m%dT%H%M%SZ"
_ON_HOST = re.compile(r"^(?P<size>\d+) (?P<mtime>[\d.]+) (?P<path>/.+)$")

Say = Callable[[str], None]


def default_dir(profile_path: Path, customer_id: str) -> Path:
    """``<profile dir>/.selfhost/<customer id>/backups``: where archives go by default."""
    return paths.state_dir(profile_path, customer_id) / BACKUP_DIR


def backup_key(profile_path: Path, passphrase: str | None, key_file: Path | None) -> str:
    values = load_secrets(profile_path, passphrase, key_file)
    if "backup_key" not in values:
        raise InvalidInput(
            f"{profile_path}: backups.encrypted is false or the database is external, so "
            f"{secrets_path(profile_path)} holds no backup_key to encrypt a backup with; set "
            "backups.encrypted: true and re-run `selfhost init --force`")
    return values["backup_key"]


@dataclass(frozen=True)
class BackupResult:
    path: Path
    bytes: int
    database_bytes: int
    seconds: float
    manifest: contents.Manifest


def _database_target(deployment: Deployment) -> tuple[SshTarget, str] | None:
    if deployment.plan.database.mode != "local":
        return None
    hosts = deployment.plan.hosts_with("postgresql")
    by_name = {t.name: t for t in deployment.targets}
    return by_name[hosts[0].name], str(deployment.plan.database.name)


def _progress(say: Say | None, what: str) -> Callable[[int], None]:
    shown = [0]

    def report(done: int) -> None:
        # One line per 16 MiB: a log stays short, a terminal still sees it move.
        if say is not None and done - shown[0] >= 16 << 20:
            shown[0] = done
            say(f"  {what}: {done / (1 << 20):.0f} MiB")
    return report


def profile_named_files(profile_path: Path) -> tuple[dict[str, Path], list[str]]:
    """The archive members of the files the profile names relative to its directory,
    and the fields whose files stay out (an absolute path, or one leaving the
    profile's directory: a restore elsewhere must find those where they are)."""
    members: dict[str, Path] = {}
    outside: list[str] = []
    for field, value in named_files(load_profile(profile_path)):
        relative = PurePosixPath(value)
        if relative.is_absolute() or ".." in relative.parts or value.startswith("~"):
            outside.append(f"{field} ({value})")
            continue
        path = resolve_named(profile_path, value)
        if not path.is_file():
            raise InvalidInput(f"{profile_path}: {field}: {path} is not a file; the backup "
                               "keeps every file the profile names (fix the path, or "
                               "restore the file)")
        members[f"{contents.PROFILE_FILES_DIR}/{relative.as_posix()}"] = path
    return members, outside


def _controller_files(profile_path: Path, customer_id: str) -> dict[str, Path]:
    files = {f"{contents.PROFILE_DIR}/profile.yaml": profile_path,
             f"{contents.PROFILE_DIR}/profile.secrets": secrets_path(profile_path),
             **profile_named_files(profile_path)[0]}
    state = paths.state_dir(profile_path, customer_id)
    if state.is_dir():
        for path in sorted(state.rglob("*")):
            relative = path.relative_to(state)
            if path.is_file() and relative.parts[0] != BACKUP_DIR:
                files[f"{contents.STATE_DIR}/{relative.as_posix()}"] = path
    return files


def create(profile_path: Path, *, output: Path | None = None, sandbox: str | None = None,
           inventory: Path | None = None, passphrase: str | None = None,
           key_file: Path | None = None, say: Say | None = None) -> BackupResult:
    """Write one archive of the deployment into ``output`` (default :func:`default_dir`)."""
    started = datetime.now(UTC)
    deployment = resolve(profile_path, inventory=inventory, sandbox=sandbox)
    key = backup_key(profile_path, passphrase, key_file)
    customer = deployment.plan.customer.id
    out_dir = output or default_dir(profile_path, customer)
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = started.strftime(_STAMP)
    final = out_dir / f"{customer}-{stamp}{archive.SUFFIX}"
    partial = final.with_name(final.name + ".partial")
    db = _database_target(deployment)
    _, outside = profile_named_files(profile_path)
    if say and outside:
        say("not in the backup (outside the profile's directory): " + ", ".join(outside))
    with tempfile.TemporaryDirectory(prefix="selfhost-backup-") as work_name:
        work = Path(work_name)
        dump = work / contents.DATABASE_DUMP
        db_bytes = 0
        if db is not None:
            target, name = db
            if say:
                say(f"dump database {name} on {target.name}")
            with dump.open("xb") as out:
                db_bytes = remote.pull(target, ["runuser", "-u", "postgres", "--", "pg_dump",
                                                "--format=custom", name], out,
                                       f"pg_dump of {name}", _progress(say, "database"))
        configs: dict[str, Path] = {}
        config_dir = deployment.plan.layout.config_dir.lstrip("/")
        for target in deployment.targets:
            if say:
                say(f"configuration of {target.name}")
            configs[target.name] = work / f"{target.name}.tar"
            with configs[target.name].open("xb") as out:
                remote.pull(target, ["tar", "-C", "/", "-cf", "-", config_dir], out,
                            f"reading /{config_dir}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as sink:
                writer = archive.Writer(sink, key, customer_id=customer,
                                        profile_fingerprint=deployment.plan.profile_fingerprint,
                                        created=started.isoformat(), tool_version=__version__)
                packer = contents.Packer(writer)
                if db is not None:
                    packer.add_file(contents.DATABASE_DUMP, dump)
                for host, path in configs.items():
                    packer.add_file(f"{contents.HOSTS_DIR}/{host}/config.tar", path)
                for name, path in _controller_files(profile_path, customer).items():
                    packer.add_file(name, path)
                manifest = contents.Manifest(
                    customer_id=customer, profile_fingerprint=deployment.plan.profile_fingerprint,
                    created=started.isoformat(), tool_version=__version__,
                    profile_name=profile_path.name,
                    database=contents.DatabaseInfo(host=db[0].name, name=db[1]) if db else None,
                    hosts=[t.name for t in deployment.targets], members=packer.members)
                packer.finish(manifest)
                sink.flush()
                os.fsync(sink.fileno())
            partial.rename(final)
        finally:
            partial.unlink(missing_ok=True)
    seconds = (datetime.now(UTC) - started).total_seconds()
    return BackupResult(path=final, bytes=final.stat().st_size, database_bytes=db_bytes,
                        seconds=seconds, manifest=manifest)


@dataclass(frozen=True)
class Listed:
    #: "archive" (on the controller, from `selfhost backup`) or "daily" (on the host)
    kind: str
    location: str
    created: str
    bytes: int


def list_backups(profile_path: Path, *, output: Path | None = None,
                 sandbox: str | None = None, inventory: Path | None = None,
                 hosts: bool = True) -> list[Listed]:
    """The archives in ``output`` (default dir) and, with ``hosts``, the daily dumps on
    the database host; oldest first."""
    deployment = resolve(profile_path, inventory=inventory, sandbox=sandbox)
    customer = deployment.plan.customer.id
    out: list[Listed] = []
    folder = output or default_dir(profile_path, customer)
    for path in sorted(folder.glob(f"*{archive.SUFFIX}")) if folder.is_dir() else []:
        header = archive.header_of(path)
        if header.customer_id == customer:
            out.append(Listed("archive", str(path), header.created, path.stat().st_size))
    db = _database_target(deployment)
    if hosts and db is not None and deployment.plan.backups.get("enabled"):
        target, name = db
        directory = str(deployment.plan.backups["directory"])
        text = remote.run(target, ["find", directory, "-maxdepth", "1", "-type", "f",
                                   "-name", f"{name}-*.dump*", "!", "-name", "*.partial",
                                   "-printf", "%s %T@ %p\\n"], "listing the daily dumps")
        for line in text.splitlines():
            if match := _ON_HOST.match(line):
                when = datetime.fromtimestamp(float(match["mtime"]), UTC).isoformat()
                out.append(Listed("daily", f"{target.name}:{match['path']}", when,
                                  int(match["size"])))
    return sorted(out, key=lambda b: b.created)


def latest(profile_path: Path, customer_id: str, output: Path | None = None) -> Path:
    folder = output or default_dir(profile_path, customer_id)
    found = sorted(p for p in folder.glob(f"*{archive.SUFFIX}")
                   if archive.header_of(p).customer_id == customer_id) \
        if folder.is_dir() else []
    if not found:
        raise InvalidInput(f"no backup of customer {customer_id} in {folder}; make one with "
                           "`selfhost backup PROFILE` or give --backup FILE")
    return found[-1]


def private_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="selfhost-restore-"))


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
