"""Where the sandbox keeps its state, the locks that guard it, and the records in it.

Layout under the state root (``/var/lib/selfhost/sandbox`` or ``$SELFHOST_SANDBOX_DIR``)::

    .lock                      global lock: network, address allocation, sandbox set
    network.json               bridge, subnet and the apt-cacher-ng pid
    apt-cacher-ng/             its config and logs (its package cache is under the cache dir)
    <name>.lock                per-sandbox lock, held for a whole ``up``/``down``
    sandboxes/<name>/state.json, id_ed25519{,.pub}, known_hosts, inventory.yml
    sandboxes/<name>/guests/<guest>/{rootfs/,nspawn.log}

Every file here is removed by ``down`` of the last sandbox; only caches outlive it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from selfhost.atomic import write_atomic
from selfhost.errors import SelfhostError

STATE_DIR_ENV = "SELFHOST_SANDBOX_DIR"
CACHE_DIR_ENV = "SELFHOST_CACHE_DIR"
DEFAULT_STATE_DIR = Path("/var/lib/selfhost/sandbox")
DEFAULT_CACHE_DIR = Path("/var/cache/selfhost")


@dataclass(frozen=True)
class Paths:
    """Every location the sandbox uses, derived from two roots."""

    state: Path
    cache: Path

    @classmethod
    def from_env(cls) -> Paths:
        state = os.environ.get(STATE_DIR_ENV) or str(DEFAULT_STATE_DIR)
        cache = os.environ.get(CACHE_DIR_ENV) or str(DEFAULT_CACHE_DIR)
        return cls(state=Path(state).absolute(), cache=Path(cache).absolute())

    @property
    def global_lock(self) -> Path:
        return self.state / ".lock"

    @property
    def network_file(self) -> Path:
        return self.state / "network.json"

    @property
    def acng_dir(self) -> Path:
        return self.state / "apt-cacher-ng"

    @property
    def acng_cache(self) -> Path:
        return self.cache / "apt-cacher-ng"

    @property
    def rootfs_cache(self) -> Path:
        return self.cache / "sandbox-rootfs"

    @property
    def sandboxes(self) -> Path:
        return self.state / "sandboxes"

    def sandbox_dir(self, name: str) -> Path:
        return self.sandboxes / name

    def sandbox_lock(self, name: str) -> Path:
        return self.state / f"{name}.lock"


@dataclass
class GuestRecord:
    name: str
    index: int
    address: str
    release: str
    pid: int | None = None


@dataclass
class SandboxRecord:
    name: str
    release: str
    guests: list[GuestRecord] = field(default_factory=list)
    #: the rootfs image its guests start from (selfhost.sandbox.rootfs.IMAGES)
    image: str = "base"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxRecord:
        guests = [GuestRecord(**g) for g in data.get("guests", [])]
        return cls(name=str(data["name"]), release=str(data["release"]), guests=guests,
                   image=str(data.get("image", "base")))


@dataclass
class NetworkRecord:
    bridge: str
    subnet: str
    bridge_address: str
    acng_pid: int | None = None


class Lock:
    """A held lock; set ``remove_when_done`` to unlink its file on release."""

    def __init__(self, remove_when_done: bool) -> None:
        self.remove_when_done = remove_when_done


@contextlib.contextmanager
def locked(path: Path, *, remove_when_done: bool = False) -> Iterator[Lock]:
    """Hold an exclusive flock on ``path``, creating it (and its directory) if needed.

    The lock file may be unlinked by its holder (``remove_when_done``) so that nothing is
    left behind; a waiter that then gets the lock on the unlinked inode notices the path
    no longer names it and starts over, so two holders can never coexist.
    """
    while True:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            continue  # the directory was removed by a holder cleaning up; make it again
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
        except BaseException:
            os.close(fd)
            raise
        break
    lock = Lock(remove_when_done)
    try:
        yield lock
    finally:
        if lock.remove_when_done:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        os.close(fd)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically so a reader never sees half a record."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SelfhostError(
            f"sandbox state file {path} is corrupt ({exc}); "
            "run `selfhost sandbox down --all` to clear it"
        ) from exc
    if not isinstance(data, dict):
        raise SelfhostError(f"sandbox state file {path} is not a JSON object")
    return data


def read_sandbox(paths: Paths, name: str) -> SandboxRecord | None:
    data = _read_json(paths.sandbox_dir(name) / "state.json")
    if data is None:
        return None
    try:
        return SandboxRecord.from_json(data)
    except (KeyError, TypeError) as exc:
        raise SelfhostError(
            f"sandbox state for {name!r} is unreadable ({exc}); "
            f"run `selfhost sandbox down --name {name}`"
        ) from exc


def write_sandbox(paths: Paths, record: SandboxRecord) -> None:
    write_json(paths.sandbox_dir(record.name) / "state.json", asdict(record))


def read_network(paths: Paths) -> NetworkRecord | None:
    data = _read_json(paths.network_file)
    if data is None:
        return None
    try:
        return NetworkRecord(**data)
    except TypeError as exc:
        raise SelfhostError(f"{paths.network_file} is unreadable ({exc})") from exc


def write_network(paths: Paths, record: NetworkRecord) -> None:
    write_json(paths.network_file, asdict(record))


def sandbox_names(paths: Paths) -> list[str]:
    """Names of every sandbox with a directory, including half-created or half-removed ones."""
    if not paths.sandboxes.is_dir():
        return []
    return sorted(p.name for p in paths.sandboxes.iterdir() if p.is_dir())
