"""Host-side primitives: running tools, tracking processes by pid, mounts, removal."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from selfhost.errors import SelfhostError


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    what: str,
    timeout: float = 600,
    env: Mapping[str, str] | None = None,
    error: type[SelfhostError] = SelfhostError,
) -> str:
    """Run a tool, return its stdout; turn any failure into ``error`` naming ``what``."""
    try:
        proc = subprocess.run(
            [os.fspath(a) for a in argv],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except FileNotFoundError as exc:
        raise error(f"{what}: {argv[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise error(f"{what}: timed out after {timeout:.0f} s") from exc
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise error(f"{what} failed (exit {proc.returncode}): {detail}")
    return proc.stdout


def _stat_field(pid: int) -> str | None:
    """The process state letter (R, S, Z, ...) or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may itself contain ") ".
    return stat.rpartition(")")[2].split()[0]


def _reap(pid: int) -> None:
    # Our own children (the guest we started in this process) would stay zombies otherwise.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def pid_matches(pid: int | None, *needles: str, settle: bool = True) -> bool:
    """Whether ``pid`` is alive and its command line contains every needle.

    The needles guard against pid reuse: a recorded pid only counts as ours while it
    still runs the command we started.
    """
    if not pid or pid <= 0:
        return False
    # A process in the middle of execve() shows an empty cmdline for a moment (seen
    # right after Popen returns); only a cmdline that stays empty counts as not ours.
    for _ in range(50 if settle else 1):
        _reap(pid)
        state = _stat_field(pid)
        if state is None or state in ("Z", "X"):
            return False
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            return False
        if raw:
            cmdline = raw.replace(b"\0", b" ").decode("utf-8", errors="replace")
            return all(n in cmdline for n in needles)
        if settle:
            time.sleep(0.01)
    return False


def pids_matching(*needles: str) -> list[int]:
    """Every live process whose command line contains all ``needles``.

    Finds processes whose pid never made it into the state (a crash between starting
    a guest and recording it), so ``down`` can still stop them.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            pid = int(entry.name)
            # No settling: kernel threads have an empty cmdline for good.
            if pid_matches(pid, *needles, settle=False):
                found.append(pid)
    return sorted(found)


def stop_pid(pid: int, *needles: str, grace: float = 20.0) -> bool:
    """SIGTERM ``pid``, wait up to ``grace`` seconds, then SIGKILL it.

    Returns True when the process had to be killed. Does nothing unless ``pid`` still
    matches ``needles`` (see :func:`pid_matches`).
    """
    if not pid_matches(pid, *needles):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_matches(pid, *needles):
            return False
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and pid_matches(pid, *needles):
        time.sleep(0.1)
    if pid_matches(pid, *needles):
        raise SelfhostError(f"process {pid} survived SIGKILL; it is stuck in the kernel")
    return True


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below ``path``, deepest first (the order to unmount them)."""
    root = os.path.realpath(path)
    found: list[Path] = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            # Field 5 is the mount point, with spaces etc. octal-escaped.
            point = line.split()[4].encode().decode("unicode_escape")
            if point == root or point.startswith(root.rstrip("/") + "/"):
                found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def unmount_all(path: Path) -> None:
    """Unmount everything below ``path`` (left by a killed debootstrap or guest)."""
    for point in mounts_under(path):
        try:
            run(["umount", point], what=f"unmounting {point}", timeout=60)
        except SelfhostError:
            # A busy mount must not keep the tree pinned forever; detach it instead.
            run(["umount", "--lazy", point], what=f"detaching {point}", timeout=60)


def remove_tree(path: Path) -> None:
    """Remove ``path`` without ever following a mount out of it.

    Mounts are released first; ``--one-file-system`` then guarantees that a mount we
    failed to see (or one that appeared meanwhile) is skipped rather than emptied.
    """
    if not path.exists() and not path.is_symlink():
        return
    unmount_all(path)
    run(["rm", "-rf", "--one-file-system", "--", path], what=f"removing {path}", timeout=600)
