"""A cgroup of its own for every guest, on hosts where systemd is not PID 1.

With ``--keep-unit`` and no systemd on the host, systemd-nspawn puts the guest into
``payload/`` and itself into ``supervisor/`` *below the cgroup it was started in*. Two
guests started from the same cgroup therefore share one cgroup tree, and each guest's
systemd manages the other's units: units fail with ``219/CGROUP`` at boot and stopping
a service in one guest can kill processes of another. Starting each nspawn in a fresh
leaf cgroup of its own (on every hierarchy systemd uses) keeps the guests apart.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import time
from pathlib import Path

PARENT = "selfhost-sandbox"


def systemd_hierarchies(mountinfo: str | None = None) -> list[Path]:
    """Mount points of the hierarchies systemd tracks processes in: the cgroup2 one and
    the v1 ``name=systemd`` one (a hybrid host has both)."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8")
    roots = []
    for line in mountinfo.splitlines():
        fields, _, tail = line.partition(" - ")
        parts, fs = fields.split(), tail.split()
        if len(parts) < 5 or len(fs) < 3:
            continue
        if fs[0] == "cgroup2" or (fs[0] == "cgroup" and "name=systemd" in fs[2].split(",")):
            roots.append(Path(parts[4]))
    return roots


def leaf_name(guest_dir: Path) -> str:
    """Unique per guest directory, so guests of different state dirs never share one."""
    digest = hashlib.sha256(str(guest_dir).encode()).hexdigest()[:10]
    return f"{guest_dir.name}-{digest}"


def guest_cgroups(guest_dir: Path) -> list[Path]:
    return [root / PARENT / leaf_name(guest_dir) for root in systemd_hierarchies()]


def prepare(guest_dir: Path) -> list[Path]:
    """Create the guest's leaf cgroups; return the ``cgroup.procs`` files to join."""
    procs = []
    for cg in guest_cgroups(guest_dir):
        cg.mkdir(parents=True, exist_ok=True)
        procs.append(cg / "cgroup.procs")
    return procs


def join_then_exec(procs: list[Path], argv: list[str]) -> list[str]:
    """argv that moves itself into ``procs`` and then execs ``argv`` (same pid).

    A shell does it rather than ``preexec_fn``, which is unsafe in a threaded process.
    """
    script = (
        'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
    )
    return ["sh", "-c", script, "sh", *[str(p) for p in procs], "--", *argv]


def _pids(cg: Path) -> list[int]:
    pids: list[int] = []
    for dirpath, _dirs, files in os.walk(cg):
        if "cgroup.procs" in files:
            with contextlib.suppress(OSError):
                text = (Path(dirpath) / "cgroup.procs").read_text()
                pids += [int(p) for p in text.split()]
    return pids


def remove(guest_dir: Path, timeout: float = 10) -> None:
    """Kill whatever is left in the guest's cgroups and remove them (deepest first)."""
    for cg in guest_cgroups(guest_dir):
        if not cg.exists():
            continue
        deadline = time.monotonic() + timeout
        while (pids := _pids(cg)) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        for dirpath, _dirs, _files in os.walk(cg, topdown=False):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
        with contextlib.suppress(OSError):
            cg.parent.rmdir()  # only succeeds once no guest uses the parent any more
