"""What a sandbox looks like to its users: :class:`Sandbox` and its :class:`Guest` hosts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from selfhost.errors import InvalidInput
from selfhost.sandbox.ssh import ssh_argv


@dataclass(frozen=True)
class Guest:
    """One Debian host booted with systemd-nspawn.

    ``state`` is ``"running"`` while its nspawn process (``pid``) lives, else ``"stopped"``.
    """

    name: str
    address: str
    release: str
    pid: int | None
    state: str
    directory: Path


@dataclass(frozen=True)
class Sandbox:
    """A named set of guests with one ssh key, a strict known_hosts and an inventory.

    ``bridge_address`` is the host's address on the guests' bridge; the apt proxy
    listens there on port 3142 and it is the only address guests can reach besides
    each other.
    """

    name: str
    release: str
    guests: list[Guest]
    ssh_key: Path
    known_hosts: Path
    inventory: Path
    bridge_address: str
    directory: Path

    @property
    def apt_proxy(self) -> str:
        """``http://ADDRESS:3142``, the apt-cacher-ng the guests use."""
        return f"http://{self.bridge_address}:3142"

    def guest(self, name: str) -> Guest:
        """The guest called ``name``; :class:`InvalidInput` if there is none."""
        for g in self.guests:
            if g.name == name:
                return g
        known = ", ".join(g.name for g in self.guests) or "none"
        raise InvalidInput(f"sandbox {self.name!r} has no guest {name!r} (it has: {known})")

    def ssh_command(self, guest: Guest | str, *argv: str, connect_timeout: int = 5) -> list[str]:
        """argv for running ``argv`` as root in ``guest`` over ssh.

        BatchMode (never prompts), strict host key checking against :attr:`known_hosts`
        (filled from the guests' own host keys when they were created), the sandbox key
        only, and ``ConnectTimeout``. Each element of ``argv`` reaches the guest as one
        argument (it is shell-quoted); with no ``argv`` ssh would open a login shell.
        """
        target = self.guest(guest) if isinstance(guest, str) else guest
        return ssh_argv(self.ssh_key, self.known_hosts, target.address, argv, connect_timeout)
