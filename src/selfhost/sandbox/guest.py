"""One guest's lifecycle: boot systemd in it with systemd-nspawn, wait for it, power it off."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from selfhost.errors import SelfhostError
from selfhost.sandbox import cgroups
from selfhost.sandbox.system import pid_matches, remove_tree, stop_pid

NSPAWN = "systemd-nspawn"


def rootfs_dir(guest_dir: Path) -> Path:
    return guest_dir / "rootfs"


def log_file(guest_dir: Path) -> Path:
    return guest_dir / "nspawn.log"


def needles(guest_dir: Path) -> tuple[str, str]:
    """What this guest's nspawn command line contains and no other process's does.

    The trailing space (arguments are joined with spaces) stops ``/x/g-1/rootfs``
    from matching a guest at ``/y/x/g-1/rootfs``'s prefix or a longer name.
    """
    return NSPAWN, f"--directory={rootfs_dir(guest_dir)} "


def is_running(pid: int | None, guest_dir: Path) -> bool:
    """Whether ``pid`` is still the nspawn process of this guest (not a reused pid)."""
    return pid_matches(pid, *needles(guest_dir))


def machine_name(guest: str, bridge: str) -> str:
    """The guest's nspawn machine name. nspawn names the host side of the guest's veth
    after it, so two state dirs whose guests share a name (two test runs side by side)
    would fight over one interface; the bridge's name, unique per state dir, tells them
    apart."""
    return f"{guest}-{bridge}"


def nspawn_argv(root: Path, machine: str, bridge: str) -> list[str]:
    return [
        NSPAWN, "--boot", f"--directory={root}", f"--machine={machine}",
        f"--network-bridge={bridge}",
        # Without systemd as the host's PID 1 there is no machined to register with
        # and no unit to move into.
        "--register=no", "--keep-unit",
        "--console=passive",
        # The guest keeps the resolv.conf and journal of its own; the host has nothing to share.
        "--resolv-conf=off", "--link-journal=no",
    ]


def start(guest_dir: Path, machine: str, bridge: str) -> int:
    """Boot the guest in its own session and cgroup, output to ``nspawn.log``; return
    nspawn's pid."""
    # Leftovers of an earlier boot (a guest that powered off by itself) go first.
    cgroups.remove(guest_dir)
    argv = cgroups.join_then_exec(
        cgroups.prepare(guest_dir), nspawn_argv(rootfs_dir(guest_dir), machine, bridge)
    )
    log = open(log_file(guest_dir), "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()
    return proc.pid


def _log_tail(guest_dir: Path, lines: int = 15) -> str:
    try:
        text = log_file(guest_dir).read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class BootResult:
    state: str  # "running" or "degraded"
    failed_units: list[str]
    seconds: float


def wait_booted(
    ssh: Callable[[Sequence[str]], list[str]],
    pid: int,
    guest_dir: Path,
    machine: str,
    timeout: float = 120,
) -> BootResult:
    """Wait on a deadline until systemd in the guest reports ``running`` over ssh.

    ``degraded`` ends the wait too; the failed units are returned so the caller can say
    which. A guest whose nspawn process dies fails at once with the tail of its log.
    """
    started = time.monotonic()
    deadline = started + timeout
    last = ""
    while True:
        if not is_running(pid, guest_dir):
            raise SelfhostError(
                f"guest {machine} stopped while booting; last lines of "
                f"{log_file(guest_dir)}:\n{_log_tail(guest_dir)}"
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            proc = subprocess.run(
                ssh(["systemctl", "is-system-running", "--wait"]),
                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=max(remaining, 1), check=False,
            )
        except subprocess.TimeoutExpired:
            break
        state = proc.stdout.strip()
        if state in ("running", "degraded"):
            failed: list[str] = []
            if state == "degraded":
                out = subprocess.run(
                    ssh(["systemctl", "list-units", "--failed", "--plain", "--no-legend"]),
                    stdin=subprocess.DEVNULL, capture_output=True, text=True,
                    timeout=30, check=False,
                ).stdout
                failed = [line.split()[0] for line in out.splitlines() if line.strip()]
            return BootResult(state, failed, time.monotonic() - started)
        last = (proc.stderr.strip() or state or f"ssh exit {proc.returncode}")[-300:]
        # sshd refuses quickly until it is up; a short pause keeps this from spinning.
        time.sleep(0.2)
    raise SelfhostError(
        f"guest {machine} did not reach systemd 'running' within {timeout:.0f} s "
        f"(last answer: {last or 'none'}); log tail:\n{_log_tail(guest_dir)}"
    )


def stop(pid: int | None, guest_dir: Path, grace: float = 30) -> bool:
    """Power the guest off cleanly (SIGTERM makes nspawn shut systemd down), SIGKILL last.

    Returns True when SIGKILL was needed.
    """
    killed = pid is not None and stop_pid(pid, *needles(guest_dir), grace=grace)
    cgroups.remove(guest_dir)
    return killed


def remove(guest_dir: Path) -> None:
    remove_tree(guest_dir)
