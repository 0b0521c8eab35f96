"""What this machine needs before it can host sandbox guests, and how to get it."""

from __future__ import annotations

import os
import platform
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from selfhost.errors import PrerequisiteMissing
from selfhost.sandbox.system import run

#: command -> the Debian package that provides it
COMMANDS: dict[str, str] = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "apt-cacher-ng": "apt-cacher-ng",
    "zstd": "zstd",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "tar": "tar",
}
APT_PACKAGES = tuple(dict.fromkeys(COMMANDS.values()))
SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Missing:
    what: str
    package: str | None  # None when no package fixes it (root, kernel)


def bridge_supported(release: str | None = None) -> bool:
    """Whether the kernel has bridge support, built in or as a loadable module."""
    if Path("/sys/module/bridge").exists():
        return True
    release = release or platform.release()
    modules = Path("/lib/modules") / release / "kernel/net/bridge"
    return any(modules.glob("bridge.ko*"))


def find_missing(
    *,
    euid: int | None = None,
    which: Callable[[str], str | None] | None = None,
    has_bridge: bool | None = None,
) -> list[Missing]:
    """Everything missing; the arguments exist so tests can describe a machine."""
    euid = os.geteuid() if euid is None else euid
    which = which or (lambda cmd: shutil.which(cmd, path=SEARCH_PATH))
    has_bridge = bridge_supported() if has_bridge is None else has_bridge
    missing = []
    if euid != 0:
        missing.append(Missing("root (the sandbox creates bridges and containers)", None))
    missing += [Missing(f"`{cmd}`", pkg) for cmd, pkg in COMMANDS.items() if which(cmd) is None]
    if not has_bridge:
        missing.append(Missing("kernel bridge support (CONFIG_BRIDGE)", None))
    return missing


def install_command(missing: list[Missing]) -> list[str]:
    packages = list(dict.fromkeys(m.package for m in missing if m.package))
    return ["apt-get", "install", "-y", "--no-install-recommends", *packages] if packages else []


def message(missing: list[Missing]) -> str:
    """The user-facing explanation: what is missing and the exact command that fixes it."""
    lines = ["the sandbox cannot run on this machine; missing:"]
    lines += [f"  - {m.what}" + (f" (package {m.package})" if m.package else "") for m in missing]
    cmd = install_command(missing)
    if cmd:
        lines.append(f"install with: {' '.join(cmd)}")
        lines.append("or re-run with --install-prereqs")
    if any(m.what.startswith("root") for m in missing):
        lines.append("run as root, e.g. with sudo")
    return "\n".join(lines)


def check(*, install: bool = False) -> None:
    """Raise :class:`PrerequisiteMissing` unless everything is there.

    With ``install``, missing packages are installed with apt-get first (as root only).
    """
    missing = find_missing()
    if install and install_command(missing) and not any(m.package is None for m in missing):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(["apt-get", "update"], what="apt-get update", error=PrerequisiteMissing, env=env)
        run(install_command(missing), what="installing sandbox prerequisites",
            error=PrerequisiteMissing, env=env)
        missing = find_missing()
    if missing:
        raise PrerequisiteMissing(message(missing))
