"""Start ansible-playbook with the secrets in a memory file, in no environment.

ansible-runner writes the environment it is given into its artifacts (the
``command`` file) in plain text, so the secrets cannot go through it. Instead
the runner starts this launcher; the launcher reads the secrets from a named
pipe that the deploying process writes (pipe contents live only in kernel
memory), puts them into an anonymous memory file (``memfd``: no path, no
disk, gone when its last holder exits) and replaces itself with
ansible-playbook (``exec``: same process, so the runner's timeout and
cancellation still reach it), which inherits the file's descriptor and learns
its number from ``SELFHOST_SECRETS_FD``. The roles read the secrets with the
``selfhost_secret`` lookup from that descriptor.

Why not the environment: every child of ansible-playbook inherits it, and some
outlive the run (ssh masters kept by ``ControlPersist``, Mitogen's multiplexer),
so a secret there would linger in ``/proc/PID/environ`` after the deploy
returns. A descriptor is not passed on: every program Ansible and Mitogen
start is started with ``close_fds``, and forked workers (which need it) end
with the run. The secrets never touch argv, a file system or an environment.

Run as ``python -m selfhost.deploy.launcher ARGS...`` (see ``__main__``).
"""

from __future__ import annotations

import fcntl
import json
import os
import sys

#: the variable holding the pipe's path (the path is not secret)
FIFO_ENV = "SELFHOST_SECRETS_FIFO"
#: the variable holding the memory file's descriptor number; the ``selfhost_secret``
#: lookup (ansible/lookup_plugins) reads this name
FD_ENV = "SELFHOST_SECRETS_FD"
PLAYBOOK_BINARY = "ansible-playbook"


def read_secrets(fifo: str) -> dict[str, str]:
    with open(fifo, encoding="utf-8") as pipe:
        data = json.load(pipe)
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError("the secrets pipe did not carry a mapping of strings")
    return data


def memory_file(secrets: dict[str, str]) -> int:
    """A descriptor of an anonymous memory file holding ``secrets`` as JSON, left
    open across ``exec`` (it is the way the secrets reach ansible-playbook)."""
    fd = os.memfd_create("selfhost-secrets", os.MFD_ALLOW_SEALING)
    payload = json.dumps(secrets).encode()
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view):]
    # Sealed: no process that inherits it can change what the roles read.
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
                | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
    os.set_inheritable(fd, True)
    return fd


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    fifo = os.environ.pop(FIFO_ENV, "")
    if fifo:
        try:
            os.environ[FD_ENV] = str(memory_file(read_secrets(fifo)))
        except (OSError, ValueError) as exc:
            sys.stderr.write(f"ERROR! cannot read the deployment secrets: {exc}\n")
            sys.exit(250)
    # exec, not a child: the runner's timeout and cancel signal must reach Ansible itself.
    os.execvp(PLAYBOOK_BINARY, [PLAYBOOK_BINARY, *args])  # noqa: S606
