"""The sandbox's ssh key, its strict known_hosts file, and ssh command lines."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path

from selfhost.sandbox.system import run


def ensure_key(path: Path, comment: str) -> Path:
    """Create an unencrypted ed25519 key pair at ``path`` once; return the private key path."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
            what="generating the sandbox ssh key")
    path.chmod(0o600)
    return path


def known_hosts_lines(entries: Iterable[tuple[Sequence[str], Sequence[str]]]) -> str:
    """Render ``known_hosts`` from ``(host aliases, ["type base64", ...])`` pairs."""
    lines = []
    for aliases, keys in entries:
        lines += [f"{','.join(aliases)} {key}" for key in keys]
    return "\n".join(lines) + "\n" if lines else ""


def ssh_options(key: Path, known_hosts: Path, connect_timeout: int = 5) -> list[str]:
    """Options that make ssh non-interactive and strict about host keys.

    ``-F none`` keeps the invoking user's ssh config from changing what is tested.
    """
    return [
        "-F", "none",
        "-i", str(key),
        "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", f"ConnectTimeout={connect_timeout}",
        "-o", "LogLevel=ERROR",
    ]


def ssh_argv(
    key: Path, known_hosts: Path, address: str, argv: Sequence[str], connect_timeout: int = 5
) -> list[str]:
    """ssh argv running ``argv`` as root on ``address``.

    ssh joins its arguments into one string for the remote shell, so ``argv`` is quoted
    here: each element arrives as exactly one argument.
    """
    remote = [shlex.join(argv)] if argv else []
    return ["ssh", *ssh_options(key, known_hosts, connect_timeout), f"root@{address}", *remote]
