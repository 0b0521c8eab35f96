"""ssh from the controller to one Plan host: the one command line every command that
asks a host something directly (support bundle, certs, status, backup) runs, and
asking for one JSON object.

Deploys and verify go through Ansible and testinfra instead; these commands need a
single round trip per host, so a plain ``ssh`` with the target's own key and
options is all they use.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from typing import Any

from selfhost.targets.service import SshTarget

#: never prompt (a prompt would hang a command nobody watches), give up on a host that
#: does not answer the connection, and notice one that stops answering mid-transfer
SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
               "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3")


def ssh_argv(target: SshTarget, remote: list[str]) -> list[str]:
    """ssh running ``remote`` (an argv, quoted here for the host's shell), through
    ``sudo -n`` when the ssh user is not root."""
    command = (["sudo", "-n", "--"] if target.sudo else []) + remote
    argv = ["ssh", *SSH_OPTIONS, "-p", str(target.port)]
    if target.identity_file:
        argv += ["-i", target.identity_file]
    return [*argv, *target.ssh_args, f"{target.user}@{target.address}", shlex.join(command)]


def run_on(target: SshTarget, remote: list[str], *, timeout: float,
           stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes] | str:
    """Run ``remote`` on the host; the finished process, or what went wrong before it
    could finish (a string). ``stdin`` is sent on standard input (never on a command
    line, where a process list would show it)."""
    try:
        return subprocess.run(ssh_argv(target, remote), input=stdin, capture_output=True,
                              timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL if stdin is None else None)
    except subprocess.TimeoutExpired:
        return f"no answer within {timeout:.0f} s"
    except OSError as exc:
        return f"cannot run ssh ({exc.strerror or exc})"


def failure(target: SshTarget, done: subprocess.CompletedProcess[bytes]) -> str:
    """Why ``done`` failed, naming the host as ssh reached it."""
    detail = done.stderr.decode("utf-8", "replace").strip()[-300:]
    return (f"ssh to {target.user}@{target.address}:{target.port} failed "
            f"(exit {done.returncode}): {detail}")


def ask_json(target: SshTarget, remote: list[str], *, timeout: float,
             stdin: bytes | None = None) -> dict[str, Any] | str:
    """Run ``remote`` on the host and read its standard output as one JSON object; a
    string saying what went wrong otherwise."""
    done = run_on(target, remote, timeout=timeout, stdin=stdin)
    if isinstance(done, str):
        return done
    if done.returncode != 0:
        return failure(target, done)
    try:
        data = json.loads(done.stdout)
    except ValueError:
        return "the host's answer is not JSON: " + done.stdout[:200].decode("utf-8",
                                                                           "replace")
    return data if isinstance(data, dict) else "the host's answer is not a JSON object"
