"""Real Debian target hosts on one machine: systemd-nspawn guests on a private bridge.

Public API (what deploy and verify code call)::

    up(name="default", hosts=1, release=None, *, image=None, install_prereqs=False,
       boot_timeout=120, progress=None) -> Sandbox
    load(name="default") -> Sandbox
    down(name="default", *, grace=30) -> list[str]
    down_all(*, grace=30) -> list[str]
    list_sandboxes() -> list[Sandbox]

A :class:`Sandbox` carries ``name``, ``release``, ``guests`` (each a :class:`Guest`
with ``name``, ``address``, ``release``, ``pid``, ``state``), ``ssh_key``,
``known_hosts``, ``inventory`` (Ansible YAML), ``bridge_address`` (also the apt
proxy, see ``apt_proxy``) and ``ssh_command(guest, *argv)``.

Guests reach only the host's bridge address (apt-cacher-ng on port 3142, which
serves the Debian archives and refuses anything else) and each other: they have no
default route. Each guest boots in a cgroup of its own.

Environment: state lives under ``/var/lib/selfhost/sandbox`` (``$SELFHOST_SANDBOX_DIR``),
caches under ``/var/cache/selfhost`` (``$SELFHOST_CACHE_DIR``); the subnet is
``$SELFHOST_SANDBOX_SUBNET`` (a private /24, default 10.213.47.0/24); the bridge is
``selfhost-sb0`` for the default state dir and ``shsb-<hash>`` for any other
(``$SELFHOST_SANDBOX_BRIDGE``); the mirror is the one in this machine's apt sources
(``$SELFHOST_DEBIAN_MIRROR``). Two state dirs need two different subnets. Everything
needs root.
"""

from typing import TYPE_CHECKING

from selfhost import lazy

if TYPE_CHECKING:
    from selfhost.sandbox.lifecycle import down, down_all, list_sandboxes, load, up
    from selfhost.sandbox.models import Guest, Sandbox
    from selfhost.sandbox.rootfs import DEFAULT_RELEASE, IMAGES, RELEASES
else:
    # imported on first use: the command line reads RELEASES without booting anything
    __getattr__ = lazy.exports(__name__, {
        **dict.fromkeys(("down", "down_all", "list_sandboxes", "load", "up"),
                        "selfhost.sandbox.lifecycle"),
        **dict.fromkeys(("Guest", "Sandbox"), "selfhost.sandbox.models"),
        **dict.fromkeys(("DEFAULT_RELEASE", "IMAGES", "RELEASES"),
                        "selfhost.sandbox.rootfs")})

__all__ = [
    "DEFAULT_RELEASE",
    "IMAGES",
    "RELEASES",
    "Guest",
    "Sandbox",
    "down",
    "down_all",
    "list_sandboxes",
    "load",
    "up",
]
