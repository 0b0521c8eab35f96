"""Debian root filesystems: built once per release with debootstrap, cached as .tar.zst.

The cached tarball is independent of keys, addresses and sandbox names; everything
per-guest (authorized key, host keys, hostname, address, apt proxy) is written at
extract time by :func:`prepare_guest_rootfs`.

Two images per release: ``base`` (debootstrap's minbase plus what a guest needs to be
reached: the install path a customer's fresh host takes) and ``server``, the base
with the Debian packages an all-in-one deployment installs already installed, as a
customer's golden image would have them (Debian's own defaults, services enabled,
nothing configured). A first deploy onto ``server`` skips dpkg's unpacking and
PostgreSQL's initdb; everything else it does as on ``base``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path

from selfhost.errors import SelfhostError
from selfhost.sandbox.state import Paths, locked
from selfhost.sandbox.system import remove_tree, run

RELEASES = ("bookworm", "trixie")
IMAGES = ("base", "server")
DEFAULT_IMAGE = "base"
DEFAULT_RELEASE = "bookworm"
MIRROR_ENV = "SELFHOST_DEBIAN_MIRROR"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "sudo",
    "iproute2", "ca-certificates",
)
# What the roles install on an all-in-one host (common, postgresql, redis, nginx, the
# egress proxy, encrypted backups, the contract probe app); kept equal to the roles'
# package defaults by tests/unit/test_sandbox_rootfs.py.
SERVER_PACKAGES = (
    "ca-certificates", "nftables", "python3-apt", "postgresql", "python3-psycopg2",
    "redis-server", "redis-tools", "nginx", "squid", "gpg", "python3", "python3-redis",
)
# Bump when the customisation below changes so old cached tarballs are not reused.
RECIPE_VERSION = 2
# Sandbox guests are throwaway hosts: dpkg need not fsync each file it unpacks (a
# crashed guest is made again, not repaired), and nothing on them reads manuals,
# documentation or translations. Cuts a first deploy's dpkg time; see the README's
# benchmarks. Customer hosts are never touched by this.
DPKG_SANDBOX_CFG = """\
# selfhost sandbox guest: see selfhost.sandbox.rootfs
force-unsafe-io
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
"""


def host_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this machine's own apt sources use (``$SELFHOST_DEBIAN_MIRROR`` wins).

    Only plain-http mirrors ending in ``/debian`` qualify: guests reach them through
    apt-cacher-ng, which cannot cache https.
    """
    if env := os.environ.get(MIRROR_ENV):
        return env.rstrip("/")
    files = [sources_dir / "sources.list"]
    with contextlib.suppress(FileNotFoundError):
        files += sorted((sources_dir / "sources.list.d").iterdir())
    pattern = re.compile(r"(http://[^\s\]]+/debian)/?(?:\s|$)")
    for f in files:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            for line in f.read_text(encoding="utf-8").splitlines():
                if line.lstrip().startswith("#"):
                    continue
                if m := pattern.search(line):
                    return m.group(1)
    return DEFAULT_MIRROR


def security_mirror(mirror: str) -> str:
    """The security archive next to ``mirror`` (``…/debian`` -> ``…/debian-security``)."""
    return mirror + "-security" if mirror.endswith("/debian") else DEFAULT_MIRROR + "-security"


def sources(release: str, mirror: str) -> str:
    """deb822 ``debian.sources``: the release, ``-updates`` and ``<release>-security``."""
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    return (
        f"Types: deb\nURIs: {mirror}\nSuites: {release} {release}-updates\n"
        f"Components: main\nSigned-By: {keyring}\n\n"
        f"Types: deb\nURIs: {security_mirror(mirror)}\nSuites: {release}-security\n"
        f"Components: main\nSigned-By: {keyring}\n"
    )


def cache_file(paths: Paths, release: str, mirror: str, image: str = DEFAULT_IMAGE) -> Path:
    """The tarball for ``release`` and ``image``; its name changes whenever the recipe
    does."""
    packages = ",".join(PACKAGES + (SERVER_PACKAGES if image == "server" else ()))
    digest = hashlib.sha256(
        f"{RECIPE_VERSION}|{release}|{mirror}|{packages}".encode()
    ).hexdigest()[:12]
    prefix = "debian" if image == DEFAULT_IMAGE else f"debian-{image}"
    return paths.rootfs_cache / f"{prefix}-{release}-{digest}.tar.zst"


def _debootstrap_script(release: str) -> list[str]:
    # An older debootstrap may not know the newest release; every Debian release since
    # bookworm bootstraps exactly like sid.
    scripts = Path("/usr/share/debootstrap/scripts")
    if (scripts / release).exists():
        return []
    return [str(scripts / "sid")]


def _customise(root: Path, release: str, mirror: str) -> None:
    """What every guest shares; see the module docstring for what is left to extract time."""
    etc = root / "etc"
    _scrub(root)
    with contextlib.suppress(FileNotFoundError):
        (etc / "apt/sources.list").unlink()
    (etc / "apt/sources.list.d").mkdir(parents=True, exist_ok=True)
    (etc / "apt/sources.list.d/debian.sources").write_text(sources(release, mirror))
    # Lists would be stale and partial (debootstrap fetched only the main suite).
    for lst in (root / "var/lib/apt/lists").glob("*"):
        if lst.is_file():
            lst.unlink()
    dpkg_cfg = etc / "dpkg/dpkg.cfg.d"
    dpkg_cfg.mkdir(parents=True, exist_ok=True)
    (dpkg_cfg / "01selfhost-sandbox").write_text(DPKG_SANDBOX_CFG)
    # The guest runs with --console=passive; a getty on it would only spin.
    systemd_etc = etc / "systemd/system"
    systemd_etc.mkdir(parents=True, exist_ok=True)
    getty = systemd_etc / "console-getty.service"
    getty.unlink(missing_ok=True)
    getty.symlink_to("/dev/null")
    # The guest's own systemctl knows its own unit layout (merged /usr on trixie).
    run(["chroot", root, "systemctl", "enable", "systemd-networkd.service"],
        what="enabling systemd-networkd in the rootfs")
    # No DNS exists inside the sandbox; an empty file makes lookups fail fast.
    resolv = etc / "resolv.conf"
    resolv.unlink(missing_ok=True)
    resolv.write_text("# no DNS in the selfhost sandbox; apt uses the proxy by address\n")


def _scrub(root: Path) -> None:
    """Remove what must be unique per guest or is only a download cache."""
    etc = root / "etc"
    (etc / "machine-id").write_text("", encoding="ascii")  # systemd makes one per boot
    with contextlib.suppress(FileNotFoundError):
        (root / "var/lib/dbus/machine-id").unlink()
    for key in (etc / "ssh").glob("ssh_host_*"):
        key.unlink()
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()


def _install_server_packages(root: Path, release: str) -> None:
    """Install SERVER_PACKAGES into ``root`` in a container that is not booted (so no
    service starts; policy-rc.d keeps the init scripts from starting them too)."""
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# selfhost: no service starts while the image is built\n"
                      "exit 101\n")
    policy.chmod(0o755)
    script = ("apt-get update -q && apt-get install -y -q " + " ".join(SERVER_PACKAGES)
              + " && apt-get clean")
    try:
        # No systemd runs this machine: no machined to register with, no unit to move into.
        run(["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--pipe",
             "--resolv-conf=bind-host", "--link-journal=no",
             f"--directory={root}", "--setenv=DEBIAN_FRONTEND=noninteractive",
             "/bin/sh", "-c", script],
            what=f"installing the server packages into the Debian {release} image",
            timeout=1800)
    finally:
        policy.unlink(missing_ok=True)
    _scrub(root)


def build(paths: Paths, release: str, *, mirror: str | None = None,
          image: str = DEFAULT_IMAGE) -> Path:
    """Return the cached rootfs tarball for ``release``, building it first if needed.

    Atomic: debootstrap and tar write into temporary names that are renamed into
    place only when complete, so a killed build never leaves a broken cache. Concurrent
    callers serialise on a per-release lock and the second one finds the cache.
    """
    if release not in RELEASES:
        raise SelfhostError(f"unknown release {release!r}; choose one of {', '.join(RELEASES)}")
    if image not in IMAGES:
        raise SelfhostError(f"unknown image {image!r}; choose one of {', '.join(IMAGES)}")
    mirror = mirror or host_mirror()
    target = cache_file(paths, release, mirror, image)
    if target.exists():
        return target
    # The server image starts from the base one (built first, under its own lock).
    base = build(paths, release, mirror=mirror) if image == "server" else None
    paths.rootfs_cache.mkdir(parents=True, exist_ok=True)
    with locked(paths.rootfs_cache / f".{release}-{image}.lock"):
        if target.exists():
            return target
        for stale in paths.rootfs_cache.glob(f".build-{release}-{image}-*"):
            # A killed build's debootstrap may outlive it; never pull its dir away.
            pid = stale.name.rsplit("-", 1)[-1]
            if not (pid.isdigit() and Path(f"/proc/{pid}").exists()):
                remove_tree(stale)
        work = paths.rootfs_cache / f".build-{release}-{image}-{os.getpid()}"
        root = work / "rootfs"
        try:
            if base is not None:
                extract(base, root)
                _install_server_packages(root, release)
            else:
                root.mkdir(parents=True)
                run(
                    [
                        "debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                        "--components=main", release, root, mirror,
                        *_debootstrap_script(release),
                    ],
                    what=f"debootstrap of Debian {release} from {mirror}",
                    timeout=1800,
                )
                _customise(root, release, mirror)
            partial = work / "rootfs.tar.zst"
            run(
                [
                    "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*",
                    "--use-compress-program=zstd -T0 -3", "-C", root, "-cf", partial, ".",
                ],
                what=f"packing the {release} rootfs",
            )
            os.replace(partial, target)
        finally:
            remove_tree(work)
    return target


def extract(tarball: Path, dest: Path) -> None:
    """Unpack a cached rootfs into ``dest`` (which must not exist yet)."""
    dest.mkdir(parents=True)
    run(
        ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*",
         "--use-compress-program=zstd -d -T0", "-C", dest, "-xf", tarball],
        what=f"extracting {tarball.name}",
    )


def network_unit(address: str, prefixlen: int) -> str:
    """systemd-networkd config for the guest side of the veth: static, no gateway."""
    return (
        "[Match]\nName=host0\n\n"
        "[Network]\n"
        f"Address={address}/{prefixlen}\n"
        "# No Gateway= on purpose: the guest reaches only the bridge.\n"
        "LinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    )


def prepare_guest_rootfs(
    root: Path, *, hostname: str, address: str, prefixlen: int, proxy: str, public_key: str
) -> None:
    """Write what is unique to one guest into an extracted rootfs, host keys included."""
    etc = root / "etc"
    (etc / "hostname").write_text(hostname + "\n")
    (etc / "hosts").write_text(
        f"127.0.0.1\tlocalhost\n{address}\t{hostname}\n::1\tlocalhost ip6-localhost\n"
    )
    (etc / "systemd/network").mkdir(parents=True, exist_ok=True)
    (etc / "systemd/network/10-host0.network").write_text(network_unit(address, prefixlen))
    (etc / "apt/apt.conf.d/01selfhost-proxy").write_text(
        f'Acquire::http::Proxy "http://{proxy}";\n'
    )
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(public_key.strip() + "\n")
    keys.chmod(0o600)
    run(["ssh-keygen", "-A", "-f", root], what=f"generating ssh host keys for {hostname}")


def host_public_keys(root: Path) -> list[str]:
    """The guest's ssh host public keys (``type base64``), for a strict known_hosts."""
    keys = []
    for pub in sorted((root / "etc/ssh").glob("ssh_host_*_key.pub")):
        kind, blob, *_ = pub.read_text().split()
        keys.append(f"{kind} {blob}")
    if not keys:
        raise SelfhostError(f"no ssh host keys were generated in {root}")
    return keys
