"""Start ansible-playbook with the secrets in its environment, and nowhere else.

ansible-runner writes the environment it is given into its artifacts (the
``command`` file) in plain text, so the secrets cannot go through it. Instead
the runner starts this launcher; the launcher reads the secrets from a named
pipe that the deploying process writes (pipe contents live only in kernel
memory), puts them into its own environment and replaces itself with
ansible-playbook (``exec``: same process, so the runner's timeout and
cancellation still reach it). The secrets never touch argv or a file.

Run as ``python -m selfhost.deploy.launcher ARGS...`` (see ``__main__``).
"""

from __future__ import annotations

import json
import os
import sys

#: the variable holding the pipe's path (the path is not secret)
FIFO_ENV = "SELFHOST_SECRETS_FIFO"
PLAYBOOK_BINARY = "ansible-playbook"


def read_secrets(fifo: str) -> dict[str, str]:
    with open(fifo, encoding="utf-8") as pipe:
        data = json.load(pipe)
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError("the secrets pipe did not carry a mapping of strings")
    return data


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    fifo = os.environ.pop(FIFO_ENV, "")
    if fifo:
        try:
            os.environ.update(read_secrets(fifo))
        except (OSError, ValueError) as exc:
            sys.stderr.write(f"ERROR! cannot read the deployment secrets: {exc}\n")
            sys.exit(250)
    # exec, not a child: the runner's timeout and cancel signal must reach Ansible itself.
    os.execvp(PLAYBOOK_BINARY, [PLAYBOOK_BINARY, *args])  # noqa: S606

