"""Where a secret could linger on the controller after a deploy: the environment of
any process, and the memory of any process the deploy left running. Found by plain
search for the values (never through the product's redactor)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def _needles(value: str) -> list[bytes]:
    """The value, and each long line of it on its own (a PEM key may sit in an
    environment JSON-encoded, its line breaks escaped)."""
    lines = [line for line in value.splitlines()
             if len(line) >= 16 and not line.startswith("-----")]
    return [value.encode(), *(line.encode() for line in lines)]


def _our_processes() -> Iterator[Path]:
    """``/proc/PID`` of every process of this machine except this one; a guest's
    processes (their own PID namespace) are another machine's, whose deployed app
    holds its secrets by design."""
    ours = os.readlink("/proc/self/ns/pid")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if os.readlink(entry / "ns" / "pid") == ours:
                yield entry


def _started_at(entry: Path) -> float:
    """When the process started, in seconds since the epoch (to about 1 s)."""
    ticks = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[19])
    boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                if line.startswith("btime "))
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _private_memory(entry: Path) -> Iterator[bytes]:
    """The process's writable private mappings (heap, stack, anonymous): where an
    inherited environment lives on after a program rewrote its own (ssh's
    setproctitle overwrites the block /proc/PID/environ shows)."""
    with (entry / "mem").open("rb", buffering=0) as mem:
        for line in (entry / "maps").read_text().splitlines():
            fields = line.split()
            if not fields[1].startswith("rw") or (len(fields) > 5
                                                  and not fields[5].startswith("[")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            with contextlib.suppress(OSError, ValueError, OverflowError):
                mem.seek(start)
                yield mem.read(end - start)


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _of_another_test_run(entry: Path) -> bool:
    """Whether the process is (or descends from) another pytest run's process: a test
    run beside this one holds its own secrets, and its own scan reads this run's
    processes' memory into its own. A deploy's leftovers are orphans (their parent is
    gone), so they never count as another run's."""
    pid = int(entry.name)
    while pid > 1:
        if pid == os.getpid():
            return False
        with contextlib.suppress(OSError):
            if b"pytest" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        try:
            pid = _parent(pid)
        except (OSError, IndexError, ValueError):
            return False
    return False


def leftover_hits(values: dict[str, str], since: float) -> list[str]:
    """``memory of PID (COMMAND): SECRET`` for every process started since ``since``
    (the deploy's start) and still running, holding one of ``values`` in memory."""
    needles = {name: _needles(value) for name, value in values.items() if len(value) >= 8}
    hits = []
    for entry in _our_processes():
        try:
            if _started_at(entry) < since - 2 or _of_another_test_run(entry):
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")[:120]
            found = {name for chunk in _private_memory(entry)
                     for name, forms in needles.items() if any(f in chunk for f in forms)}
        except OSError:
            continue  # ended since it was listed
        hits += [f"memory of {entry.name} ({command}): {name}" for name in sorted(found)]
    return hits


def environ_hits(values: dict[str, str]) -> list[str]:
    """``environ of PID (COMMAND): SECRET`` for every process of this machine (not
    of its sandbox guests) whose environment holds one of ``values``, found by plain
    search (no redactor)."""
    needles = {name: _needles(value) for name, value in values.items() if len(value) >= 8}
    hits = []
    for entry in _our_processes():
        try:
            environ = (entry / "environ").read_bytes()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")[:120]
        except OSError:
            continue  # ended since it was listed
        hits += [f"environ of {entry.name} ({command}): {name}"
                 for name, forms in needles.items() if any(f in environ for f in forms)]
    return hits
