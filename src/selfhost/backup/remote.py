"""Commands on the deployment's hosts over ssh: the database dump streamed out, the
configuration directory read, a dump streamed back in, the on-host dumps listed.

ssh runs with the inventory's options (key, known_hosts, port); the remote command
is one quoted argv, through ``sudo -n`` when the ssh user is not root.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from selfhost.errors import DeployFailed
from selfhost.targets.service import SshTarget
from selfhost.targets.ssh import ssh_argv

_BLOCK = 1 << 20
#: how long a host may stay silent (connect, a short command) before it is given up on
SHORT_TIMEOUT = 120


def _failed(target: SshTarget, what: str, code: int, stderr: bytes) -> DeployFailed:
    detail = stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
    return DeployFailed(f"{target.name} ({target.address}): {what} failed (exit {code})"
                        + (": " + " / ".join(detail) if detail else ""))


def run(target: SshTarget, argv: list[str], what: str,
        timeout: float = SHORT_TIMEOUT) -> str:
    """Run ``argv`` on the host; its stdout. :class:`DeployFailed` when it fails."""
    try:
        done = subprocess.run(ssh_argv(target, argv), capture_output=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        raise DeployFailed(f"{target.name} ({target.address}): {what} did not finish "
                           f"within {timeout:.0f} s") from None
    if done.returncode != 0:
        raise _failed(target, what, done.returncode, done.stderr)
    return done.stdout.decode("utf-8", "replace")


def pull(target: SshTarget, argv: list[str], out: BinaryIO, what: str,
         progress: Callable[[int], None] | None = None) -> int:
    """Stream the stdout of ``argv`` on the host into ``out``; the byte count."""
    total = 0
    with subprocess.Popen(ssh_argv(target, argv), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        while block := proc.stdout.read(_BLOCK):
            out.write(block)
            total += len(block)
            if progress is not None:
                progress(total)
        stderr = proc.stderr.read()
        code = proc.wait()
    if code != 0:
        raise _failed(target, what, code, stderr)
    return total


def push(target: SshTarget, argv: list[str], source: Path, what: str,
         progress: Callable[[int], None] | None = None) -> None:
    """Stream the file ``source`` into the stdin of ``argv`` on the host."""
    sent = 0
    with subprocess.Popen(ssh_argv(target, argv), stdin=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        assert proc.stdin is not None
        assert proc.stderr is not None
        try:
            with source.open("rb") as data:
                while block := data.read(_BLOCK):
                    proc.stdin.write(block)
                    sent += len(block)
                    if progress is not None:
                        progress(sent)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the command ended early; its exit code and stderr say why
        stderr = proc.stderr.read()
        code = proc.wait()
    if code != 0:
        raise _failed(target, what, code, stderr)
