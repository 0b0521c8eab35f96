"""``up``, ``down``, ``load`` and ``list_sandboxes``: the operations the CLI and tests call.

Locking: a per-sandbox lock is held for a whole ``up`` or ``down`` of that sandbox; the
global lock is held only for the short steps that touch shared things (bridge, apt
cache, address allocation, the set of sandboxes). Several sandboxes can therefore be
brought up at once without picking the same addresses.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from selfhost.errors import InvalidInput, SelfhostError
from selfhost.sandbox import cgroups, inventory, limits, network, prereqs, rootfs, ssh
from selfhost.sandbox import guest as guest_mod
from selfhost.sandbox.models import Guest, Sandbox
from selfhost.sandbox.state import (
    GuestRecord,
    NetworkRecord,
    Paths,
    SandboxRecord,
    locked,
    read_network,
    read_sandbox,
    sandbox_names,
    write_sandbox,
)
from selfhost.sandbox.system import pids_matching, remove_tree, stop_pid

Progress = Callable[[str], None]
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
MAX_HOSTS = 50
DEFAULT_NAME = "default"


def validate_name(name: str) -> str:
    """Sandbox names become hostnames (``NAME-1``), so they are short DNS labels."""
    if not NAME_RE.match(name) or name.endswith("-"):
        raise InvalidInput(
            f"--name {name!r} is not a valid sandbox name: use 1-20 lowercase letters, "
            "digits and dashes, starting with a letter (e.g. --name ci-web)"
        )
    return name


def validate_hosts(hosts: int) -> int:
    if not 1 <= hosts <= MAX_HOSTS:
        raise InvalidInput(f"--hosts {hosts} is out of range: give a number from 1 to {MAX_HOSTS}")
    return hosts


def validate_release(release: str) -> str:
    if release not in rootfs.RELEASES:
        raise InvalidInput(
            f"--release {release!r} is not supported: choose {' or '.join(rootfs.RELEASES)}"
        )
    return release


def _files(paths: Paths, name: str) -> tuple[Path, Path, Path]:
    d = paths.sandbox_dir(name)
    return d / "id_ed25519", d / "known_hosts", d / "inventory.yml"


def _guest_dir(paths: Paths, sandbox: str, guest: str) -> Path:
    return paths.sandbox_dir(sandbox) / "guests" / guest


def _to_sandbox(paths: Paths, record: SandboxRecord, bridge_address: str) -> Sandbox:
    key, known_hosts, inv = _files(paths, record.name)
    guests = []
    for g in record.guests:
        gdir = _guest_dir(paths, record.name, g.name)
        running = guest_mod.is_running(g.pid, gdir)
        guests.append(
            Guest(g.name, g.address, g.release, g.pid if running else None,
                  "running" if running else "stopped", gdir)
        )
    return Sandbox(record.name, record.release, guests, key, known_hosts, inv,
                   bridge_address, paths.sandbox_dir(record.name))


def _bridge_address(paths: Paths) -> str:
    net = read_network(paths)
    return net.bridge_address if net else network.bridge_address(network.configured_subnet())


def load(name: str = DEFAULT_NAME) -> Sandbox:
    """The sandbox called ``name`` as it is now (guest states are checked live).

    Raises :class:`InvalidInput` if there is no such sandbox.
    """
    paths = Paths.from_env()
    record = read_sandbox(paths, name)
    if record is None:
        raise InvalidInput(f"there is no sandbox named {name!r}; create it with "
                           f"`selfhost sandbox up --name {name}`")
    return _to_sandbox(paths, record, _bridge_address(paths))


def list_sandboxes() -> list[Sandbox]:
    """Every sandbox with a state record, sorted by name."""
    paths = Paths.from_env()
    records = [r for n in sandbox_names(paths) if (r := read_sandbox(paths, n)) is not None]
    if not records:
        return []
    address = _bridge_address(paths)
    return [_to_sandbox(paths, r, address) for r in records]


def _reserve(
    paths: Paths, name: str, hosts: int, release: str | None, image: str | None
) -> tuple[SandboxRecord, NetworkRecord]:
    """Under the global lock: network up, sandbox recorded, addresses for new guests."""
    with locked(paths.global_lock) as lock:
        try:
            net = network.ensure_network(paths)
        except BaseException:
            if not sandbox_names(paths):
                # A half-made network with no sandbox would otherwise linger.
                network.teardown_network(paths)
                lock.remove_when_done = True
            raise
        record = read_sandbox(paths, name)
        if record is None:
            record = SandboxRecord(name=name, release=release or rootfs.DEFAULT_RELEASE,
                                   image=image or rootfs.DEFAULT_IMAGE)
        elif release is not None and release != record.release:
            raise InvalidInput(
                f"sandbox {name!r} runs Debian {record.release}, not {release}; "
                f"use another --name for {release} guests"
            )
        elif image is not None and image != record.image:
            raise InvalidInput(
                f"sandbox {name!r} has guests of the {record.image!r} image, not {image!r}; "
                f"use another --name for {image!r} guests"
            )
        missing = hosts - len(record.guests)
        if missing > 0:
            taken = [g.address for n in sandbox_names(paths)
                     if (r := read_sandbox(paths, n)) is not None for g in r.guests]
            subnet = ipaddress.IPv4Network(net.subnet)
            next_index = max((g.index for g in record.guests), default=0) + 1
            for i, address in enumerate(network.allocate_addresses(subnet, taken, missing)):
                index = next_index + i
                record.guests.append(GuestRecord(f"{name}-{index}", index, address,
                                                 record.release))
        write_sandbox(paths, record)
        return record, net


def _create_guest_dir(
    paths: Paths, sandbox: str, g: GuestRecord, *, bridge_address: str, pubkey: str,
    progress: Progress, image: str,
) -> None:
    gdir = _guest_dir(paths, sandbox, g.name)
    if guest_mod.rootfs_dir(gdir).is_dir():
        return
    tarball = rootfs.build(paths, g.release, image=image)
    progress(f"extracting {g.name}")
    # Built under a temporary name and renamed, so a killed run never leaves a guest
    # that looks complete but is not.
    partial = gdir.with_name(f".{g.name}.partial")
    remove_tree(partial)
    rootfs.extract(tarball, guest_mod.rootfs_dir(partial))
    rootfs.prepare_guest_rootfs(
        guest_mod.rootfs_dir(partial), hostname=g.name, address=g.address, prefixlen=24,
        proxy=f"{bridge_address}:{network.ACNG_PORT}", public_key=pubkey,
    )
    os.replace(partial, gdir)


def _create_guest_dirs(
    paths: Paths, record: SandboxRecord, *, bridge_address: str, pubkey: str,
    progress: Progress,
) -> None:
    """Extract the guests that have no rootfs yet, several at once.

    Extraction is bound by file creation in the kernel, so running one per core cuts
    the wait for a multi-guest sandbox nearly by the core count.
    """
    todo = [g for g in record.guests
            if not guest_mod.rootfs_dir(_guest_dir(paths, record.name, g.name)).is_dir()]
    if not todo:
        return
    tarball = rootfs.cache_file(paths, record.release, rootfs.host_mirror(), record.image)
    if not tarball.exists():
        progress(f"building the Debian {record.release} {record.image} rootfs "
                 "(once; a few minutes)")
    rootfs.build(paths, record.release, image=record.image)
    workers = max(1, min(len(todo), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_create_guest_dir, paths, record.name, g,
                               bridge_address=bridge_address, pubkey=pubkey, progress=progress,
                               image=record.image)
                   for g in todo]
        for future in futures:
            future.result()


def _write_access_files(paths: Paths, record: SandboxRecord) -> None:
    key, known_hosts, inv = _files(paths, record.name)
    entries = [
        ((g.name, g.address),
         rootfs.host_public_keys(guest_mod.rootfs_dir(_guest_dir(paths, record.name, g.name))))
        for g in record.guests
    ]
    known_hosts.write_text(ssh.known_hosts_lines(entries))
    rows = [(g.name, g.address, g.release) for g in record.guests]
    inv.write_text(inventory.render(record.name, rows, key, known_hosts))


def _ssh_for(sandbox: Sandbox, live: Guest) -> Callable[[Sequence[str]], list[str]]:
    return lambda argv: sandbox.ssh_command(live, *argv)


def up(
    name: str = DEFAULT_NAME,
    hosts: int = 1,
    release: str | None = None,
    *,
    image: str | None = None,
    install_prereqs: bool = False,
    boot_timeout: float = 120,
    progress: Progress | None = None,
) -> Sandbox:
    """Make sandbox ``name`` have at least ``hosts`` running guests and return it.

    ``release`` is ``"bookworm"`` or ``"trixie"``; ``None`` means bookworm for a new
    sandbox and the sandbox's own release otherwise (a sandbox has one release).
    ``image`` is ``"base"`` (a fresh host) or ``"server"`` (the all-in-one packages
    already installed; see :mod:`selfhost.sandbox.rootfs`); ``None`` means base for a
    new sandbox and the sandbox's own image otherwise (a sandbox has one image).
    Idempotent: running guests are kept, stopped ones are booted again, missing ones
    are created; it never removes guests. Returns once every guest's systemd reports
    ``running``; raises :class:`SelfhostError` naming the failed units if one is
    ``degraded`` (the guests are left running for inspection).
    """
    validate_name(name)
    validate_hosts(hosts)
    if release is not None:
        validate_release(release)
    if image is not None and image not in rootfs.IMAGES:
        raise InvalidInput(f"image {image!r} is not known: choose {' or '.join(rootfs.IMAGES)}")
    prereqs.check(install=install_prereqs)
    say = progress or (lambda _msg: None)
    paths = Paths.from_env()
    try:
        return _up_locked(paths, name, hosts, release, image, boot_timeout=boot_timeout,
                          say=say)
    finally:
        _tidy_state_root(paths)


def _up_locked(
    paths: Paths, name: str, hosts: int, release: str | None, image: str | None, *,
    boot_timeout: float, say: Progress,
) -> Sandbox:
    with locked(paths.sandbox_lock(name)) as lock:
        existed = read_sandbox(paths, name) is not None
        try:
            record, net = _reserve(paths, name, hosts, release, image)
        except BaseException:
            lock.remove_when_done = not existed
            raise
        bridge_address = net.bridge_address
        started = False
        try:
            key = ssh.ensure_key(_files(paths, name)[0], f"selfhost-sandbox-{name}")
            pubkey = key.with_name(key.name + ".pub").read_text()
            _create_guest_dirs(paths, record, bridge_address=bridge_address, pubkey=pubkey,
                               progress=say)
            _write_access_files(paths, record)
            sandbox = _to_sandbox(paths, record, bridge_address)
            limits.ensure_inotify_capacity(
                sum(live.state != "running" for live in sandbox.guests), say)
            for g, live in zip(record.guests, sandbox.guests, strict=True):
                if live.state == "running":
                    continue
                # A guest started by a run that died before recording its pid must be
                # adopted, not booted a second time on the same rootfs.
                strays = pids_matching(*guest_mod.needles(live.directory))
                if strays:
                    g.pid = strays[0]
                else:
                    say(f"booting {g.name} ({g.address})")
                    machine = guest_mod.machine_name(g.name, net.bridge)
                    g.pid = guest_mod.start(live.directory, machine, net.bridge)
                    started = True
                write_sandbox(paths, record)
        except BaseException:
            if not existed and not started:
                # Nothing ran yet: leave no half-made sandbox (and no idle bridge) behind.
                _remove(paths, name, record)
                lock.remove_when_done = True
            raise
        sandbox = _to_sandbox(paths, record, bridge_address)
        degraded = []
        for live in sandbox.guests:
            try:
                result = guest_mod.wait_booted(
                    _ssh_for(sandbox, live), live.pid or 0, live.directory, live.name,
                    timeout=boot_timeout,
                )
            except SelfhostError as exc:
                raise SelfhostError(
                    f"{exc.message}\nthe sandbox is left as it is for inspection; remove it "
                    f"with `selfhost sandbox down --name {name}`"
                ) from exc
            say(f"{live.name} is {result.state} after {result.seconds:.1f} s")
            if result.state != "running":
                degraded.append(f"{live.name}: {', '.join(result.failed_units) or '?'}")
        if degraded:
            raise SelfhostError(
                "guest(s) booted with failed units:\n  " + "\n  ".join(degraded)
                + f"\nthey are left running; inspect with ssh, remove with "
                f"`selfhost sandbox down --name {name}`"
            )
        return sandbox


def _remove(
    paths: Paths, name: str, record: SandboxRecord | None, grace: float = 30
) -> list[str]:
    """Stop every guest of ``name`` (recorded or found in /proc), delete it, and tear the
    network down if it was the last sandbox. Caller holds the sandbox lock."""
    sdir = paths.sandbox_dir(name)
    killed = []
    all_guests = (guest_mod.NSPAWN, f"--directory={sdir}/guests/")
    stray = pids_matching(*all_guests)
    recorded = {g.pid for g in record.guests} if record else set()
    # Signal everything first so the guests power off in parallel, then wait for each.
    targets: list[tuple[int | None, Path | None, str]] = [
        (g.pid, _guest_dir(paths, name, g.name), g.name) for g in (record.guests if record else [])
    ]
    targets += [(pid, None, f"pid {pid}") for pid in stray if pid not in recorded]
    for pid, gdir, _ in targets:
        if pid and (gdir is None or guest_mod.is_running(pid, gdir)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    for pid, gdir, label in targets:
        if gdir is not None:
            was_killed = guest_mod.stop(pid, gdir, grace=grace)
        else:
            was_killed = bool(pid) and stop_pid(pid or 0, *all_guests, grace=grace)
        if was_killed:
            killed.append(label)
    guests_dir = sdir / "guests"
    if guests_dir.is_dir():
        gdirs = list(guests_dir.iterdir())
        for gdir in gdirs:
            cgroups.remove(gdir)
        # Deleting a rootfs waits on the disk (discard, journal) far more than on the
        # CPU, so several deletions at once finish much sooner than one after another.
        with ThreadPoolExecutor(max_workers=max(1, min(len(gdirs), 8))) as pool:
            for future in [pool.submit(remove_tree, gdir) for gdir in gdirs]:
                future.result()
    with locked(paths.global_lock) as lock:
        remove_tree(sdir)
        if not sandbox_names(paths):
            network.teardown_network(paths)
            lock.remove_when_done = True
    return killed


def _tidy_state_root(paths: Paths) -> None:
    # Empty directories only: anything another process put there meanwhile stays.
    for d in (paths.sandboxes, paths.state):
        with contextlib.suppress(OSError):
            d.rmdir()


def down(name: str = DEFAULT_NAME, *, grace: float = 30) -> list[str]:
    """Power off and delete sandbox ``name``; idempotent (a missing sandbox is no error).

    Each guest gets SIGTERM (a clean systemd poweroff) and ``grace`` seconds before
    SIGKILL. When no sandbox is left, apt-cacher-ng is stopped and the bridge removed,
    so nothing remains but the caches (rootfs tarballs and apt packages under the
    cache dir). Returns the guests that had to be killed.
    """
    validate_name(name)
    paths = Paths.from_env()
    with locked(paths.sandbox_lock(name), remove_when_done=True):
        killed = _remove(paths, name, read_sandbox(paths, name), grace)
    _tidy_state_root(paths)
    return killed


def down_all(*, grace: float = 30) -> list[str]:
    """:func:`down` for every sandbox; also clears a network left by a failed ``up``."""
    paths = Paths.from_env()
    killed: list[str] = []
    for name in sandbox_names(paths):
        with locked(paths.sandbox_lock(name), remove_when_done=True):
            killed += _remove(paths, name, read_sandbox(paths, name), grace)
    if not sandbox_names(paths):
        with locked(paths.global_lock, remove_when_done=True):
            if not sandbox_names(paths):
                network.teardown_network(paths)
    _tidy_state_root(paths)
    return killed

