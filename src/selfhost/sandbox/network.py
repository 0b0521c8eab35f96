"""The shared bridge, guest addresses on it, and the apt cache bound to it.

Guests get static addresses and no default route, so the only thing they can reach
is the host's bridge address: the apt cache there, and each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import pwd
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from selfhost.errors import InvalidInput, PrerequisiteMissing, SelfhostError
from selfhost.sandbox.rootfs import host_mirror, security_mirror
from selfhost.sandbox.state import (
    DEFAULT_STATE_DIR,
    NetworkRecord,
    Paths,
    read_network,
    write_network,
)
from selfhost.sandbox.system import pid_matches, pids_matching, remove_tree, run, stop_pid

SUBNET_ENV = "SELFHOST_SANDBOX_SUBNET"
# Picked to be unlikely on a CI or developer machine; checked against the routes anyway.
DEFAULT_SUBNET = "10.213.47.0/24"
BRIDGE_ENV = "SELFHOST_SANDBOX_BRIDGE"
BRIDGE = "selfhost-sb0"
ACNG_PORT = 3142


def configured_subnet(value: str | None = None) -> ipaddress.IPv4Network:
    """The sandbox subnet from ``value`` or ``$SELFHOST_SANDBOX_SUBNET``: a private /24."""
    raw = value if value is not None else os.environ.get(SUBNET_ENV) or DEFAULT_SUBNET
    try:
        net = ipaddress.IPv4Network(raw, strict=True)
    except ValueError as exc:
        raise InvalidInput(
            f"{SUBNET_ENV}={raw!r} is not an IPv4 network ({exc}); "
            "set it to a private /24 such as 10.213.47.0/24"
        ) from exc
    if net.prefixlen != 24 or not net.is_private:
        raise InvalidInput(
            f"{SUBNET_ENV}={raw!r} must be a private /24 (e.g. 10.213.47.0/24)"
        )
    return net


def bridge_name(paths: Paths) -> str:
    """``$SELFHOST_SANDBOX_BRIDGE``, else ``selfhost-sb0`` for the default state dir.

    A state dir of its own (tests, benchmarks) gets a bridge of its own, named from a
    hash of the dir, so tearing it down can never cut off another state dir's guests.
    """
    if env := os.environ.get(BRIDGE_ENV):
        if len(env) > 15 or not env.replace("-", "").replace("_", "").isalnum():
            raise InvalidInput(f"{BRIDGE_ENV}={env!r} is not a valid interface name "
                               "(at most 15 letters, digits, - or _)")
        return env
    if paths.state == DEFAULT_STATE_DIR:
        return BRIDGE
    return "shsb-" + hashlib.sha256(str(paths.state).encode()).hexdigest()[:8]


def bridge_address(net: ipaddress.IPv4Network) -> str:
    """The host's own address on the bridge: the first in the subnet."""
    return str(net.network_address + 1)


def allocate_addresses(
    net: ipaddress.IPv4Network, taken: Iterable[str], count: int
) -> list[str]:
    """The ``count`` lowest free guest addresses; the bridge's own address is never free.

    Pure so it can be tested; callers hold the global lock so two ``up`` runs cannot
    both pick the same address.
    """
    used = {ipaddress.IPv4Address(a) for a in taken}
    used.add(ipaddress.IPv4Address(bridge_address(net)))
    free = (h for h in net.hosts() if h not in used)
    picked = [str(a) for _, a in zip(range(count), free, strict=False)]
    if len(picked) < count:
        raise SelfhostError(
            f"the sandbox subnet {net} has only {len(picked)} free addresses, "
            f"{count} are needed; remove a sandbox with `selfhost sandbox down`"
        )
    return picked


def overlapping_routes(
    net: ipaddress.IPv4Network, routes: list[dict[str, object]], bridge: str = BRIDGE
) -> list[str]:
    """Host routes (from ``ip -j route``) that collide with ``net``, except our bridge's own."""
    clashes = []
    for route in routes:
        dst = str(route.get("dst", ""))
        if dst in ("", "default") or route.get("dev") == bridge:
            continue
        with contextlib.suppress(ValueError):
            if ipaddress.IPv4Network(dst, strict=False).overlaps(net):
                clashes.append(f"{dst} dev {route.get('dev', '?')}")
    return clashes


def _bridge_exists(bridge: str) -> bool:
    return Path("/sys/class/net", bridge).exists()


def _check_routes(net: ipaddress.IPv4Network, bridge: str) -> None:
    routes = json.loads(run(["ip", "-j", "-4", "route", "show"], what="reading routes") or "[]")
    clashes = overlapping_routes(net, routes, bridge)
    if clashes:
        raise InvalidInput(
            f"the sandbox subnet {net} overlaps host route(s) {', '.join(clashes)}; "
            f"set {SUBNET_ENV} to a free private /24"
        )


def _create_bridge(net: ipaddress.IPv4Network, bridge: str) -> None:
    try:
        run(["ip", "link", "add", bridge, "type", "bridge"], what=f"creating bridge {bridge}")
    except SelfhostError as exc:
        raise PrerequisiteMissing(
            f"{exc.message}\nThe kernel needs bridge support (CONFIG_BRIDGE, module `bridge`)."
        ) from exc
    # The bridge carries only guest traffic; no IPv6 chatter (RAs, MLD) is wanted on it.
    ipv6 = Path(f"/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6")
    if ipv6.exists():
        ipv6.write_text("1\n", encoding="ascii")
    run(["ip", "addr", "add", f"{bridge_address(net)}/{net.prefixlen}", "dev", bridge],
        what=f"addressing bridge {bridge}")
    run(["ip", "link", "set", bridge, "up"], what=f"bringing up bridge {bridge}")


def _prefix(url: str) -> str:
    return url.split("://", 1)[-1].rstrip("/")


def _acng_conf(paths: Paths, address: str, cache: Path) -> Path:
    """A minimal config of our own: Debian's default remaps deb.debian.org away.

    ``ForceManaged`` makes it refuse every URL outside the Debian mirror and its
    security archive, so it cannot be used as a general proxy to the internet.
    """
    mirror = host_mirror()
    security = security_mirror(mirror)
    conf_dir = paths.acng_dir / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (paths.acng_dir / "log").mkdir(exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    # apt-cacher-ng drops privileges to its own user when started as root.
    with contextlib.suppress(KeyError, OSError):
        user = pwd.getpwnam("apt-cacher-ng")
        for d in (cache, paths.acng_dir / "log"):
            os.chown(d, user.pw_uid, user.pw_gid)
    (conf_dir / "acng.conf").write_text(
        "\n".join(
            [
                f"CacheDir: {cache}",
                f"LogDir: {paths.acng_dir / 'log'}",
                "SupportDir: /usr/lib/apt-cacher-ng",
                f"Port: {ACNG_PORT}",
                f"BindAddress: {address}",
                "ForeGround: 1",
                f"PidFile: {paths.acng_dir / 'acng.pid'}",
                f"SocketPath: {paths.acng_dir / 'acng.socket'}",
                "ExThreshold: 4",
                "ReportPage: acng-report.html",
                # Only the Debian archives: guests get packages, not a way out.
                f"Remap-debian: {_prefix(mirror)} ; {mirror}/",
                f"Remap-debsec: {_prefix(security)} ; {security}/",
                "ForceManaged: 1",
                "",
            ]
        ),
        encoding="utf-8",
    )
    return conf_dir


def _acng_needles(paths: Paths) -> tuple[str, str]:
    # Exact argument (arguments are joined with spaces): /x/apt-cacher-ng/conf must not
    # match the instance of a state dir at /y/x.
    return ("apt-cacher-ng", f" -c {paths.acng_dir / 'conf'} ")


def _wait_port(address: str, port: int, deadline: float, pid: int, paths: Paths) -> None:
    while time.monotonic() < deadline:
        if not pid_matches(pid, *_acng_needles(paths)):
            # Quoted here because a failed `up` removes these files again.
            said = []
            for f in (paths.acng_dir / "acng.out", paths.acng_dir / "log/apt-cacher.err"):
                with contextlib.suppress(OSError):
                    said += f.read_text(errors="replace").strip().splitlines()[-5:]
            raise SelfhostError(
                f"apt-cacher-ng exited at start ({'; '.join(said) or 'no output'}); "
                f"is something else (a system apt-cacher-ng?) listening on port {port}?"
            )
        with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
            return
        time.sleep(0.1)
    raise SelfhostError(f"apt-cacher-ng did not listen on {address}:{port} within 20 s")


def _claim_shared_cache(paths: Paths) -> int | None:
    """An fd holding the shared apt cache's lock, or None if another instance has it.

    apt-cacher-ng assumes it is alone on its cache dir, so only one instance (the one
    that inherits this fd and so holds the lock for as long as it runs) may use the
    shared one; others (a second state dir, e.g. a concurrent test run) get a private
    cache inside their state dir that goes away with it.
    """
    paths.cache.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.cache / ".apt-cacher-ng.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _start_acng(paths: Paths, address: str) -> int:
    lock_fd = _claim_shared_cache(paths)
    cache = paths.acng_cache if lock_fd is not None else paths.acng_dir / "cache"
    conf_dir = _acng_conf(paths, address, cache)
    out = open(paths.acng_dir / "acng.out", "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            ["apt-cacher-ng", "-c", str(conf_dir)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(lock_fd,) if lock_fd is not None else (),
        )
    except FileNotFoundError as exc:
        raise PrerequisiteMissing(
            "apt-cacher-ng is not installed; apt-get install -y apt-cacher-ng"
        ) from exc
    finally:
        out.close()
        if lock_fd is not None:
            os.close(lock_fd)
    _wait_port(address, ACNG_PORT, time.monotonic() + 20, proc.pid, paths)
    return proc.pid


def ensure_network(paths: Paths) -> NetworkRecord:
    """Bring up the bridge and the apt cache if they are not up. Caller holds the global lock.

    Idempotent: a bridge or cache that vanished (host reboot, killed process) is recreated.
    """
    net = configured_subnet()
    record = read_network(paths)
    if record is not None and record.subnet != str(net):
        raise InvalidInput(
            f"running sandboxes use subnet {record.subnet} but {SUBNET_ENV} asks for {net}; "
            "take them down first (`selfhost sandbox down --all`) or unset it"
        )
    record = record or NetworkRecord(
        bridge=bridge_name(paths), subnet=str(net), bridge_address=bridge_address(net)
    )
    if not _bridge_exists(record.bridge):
        _check_routes(net, record.bridge)
        _create_bridge(net, record.bridge)
    write_network(paths, record)
    if not pid_matches(record.acng_pid, *_acng_needles(paths)):
        record.acng_pid = _start_acng(paths, record.bridge_address)
        write_network(paths, record)
    return record


def teardown_network(paths: Paths) -> None:
    """Stop the apt cache and remove the bridge. Caller holds the global lock.

    The apt package cache under the cache dir stays: it is a cache.
    """
    record = read_network(paths)
    # Also any instance whose pid never made it into the record (a crash in between).
    for pid in {*pids_matching(*_acng_needles(paths)), *([record.acng_pid] if record else [])}:
        if pid:
            stop_pid(pid, *_acng_needles(paths), grace=10)
    bridge = record.bridge if record is not None else bridge_name(paths)
    if _bridge_exists(bridge):
        run(["ip", "link", "delete", bridge], what=f"removing bridge {bridge}")
    remove_tree(paths.acng_dir)
    with contextlib.suppress(FileNotFoundError):
        paths.network_file.unlink()
