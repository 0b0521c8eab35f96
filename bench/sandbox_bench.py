"""Benchmark of the sandbox: cold rootfs build, guests from the cache, boot, memory.

Run as root:  python bench/sandbox_bench.py [--release bookworm] [--guests 3] [--warm-only]

It works in private state and cache directories (a fresh, empty cache, so the first
guest really is "from nothing"; ``--warm-only`` uses the normal cache instead) with a
subnet of its own, and removes its guests, bridge and apt cache process at the end.

Method:
- cold: ``up(hosts=1)`` with an empty rootfs cache; the phases (debootstrap + pack,
  extract, boot) are split using the timestamps of ``up``'s progress messages.
- warm: ``up`` again with one more host each time; one new guest extracted from the
  cached tarball and booted, the others untouched. Then a second sandbox of
  ``--guests`` guests in one ``up`` (extracted in parallel, one per core).
- boot: from starting ``systemd-nspawn`` until ``systemctl is-system-running --wait``
  over ssh answers ``running``.
- memory per idle guest: after the guests have idled for ``--idle`` seconds, the sum of
  the proportional set size (PSS, ``/proc/PID/smaps_rollup``) of every process in the
  guest's process tree, nspawn included. PSS splits pages shared between guests (the
  same libraries from identical rootfs files are NOT shared: each guest has its own
  files, so the page cache is counted where it is mapped). There is no per-guest
  memory cgroup on a host without systemd, hence PSS. The host's MemAvailable drop
  per guest is shown too, as a cross-check (it also counts the page cache filled by
  extracting the rootfs, so it is an upper bound).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from selfhost import sandbox
from selfhost.sandbox import rootfs
from selfhost.sandbox.network import overlapping_routes
from selfhost.sandbox.state import Paths


def free_subnet() -> str:
    routes = json.loads(subprocess.run(["ip", "-j", "-4", "route"], capture_output=True,
                                       text=True, check=True).stdout or "[]")
    for third in range(100, 140):
        net = ipaddress.IPv4Network(f"10.213.{third}.0/24")
        if not overlapping_routes(net, routes, bridge=""):
            return str(net)
    raise SystemExit("no free subnet in 10.213.100-139.0/24")


class Clock:
    """Collects (seconds since start, message) from ``up``'s progress callback."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.events: list[tuple[float, str]] = []

    def __call__(self, msg: str) -> None:
        self.events.append((time.monotonic() - self.start, msg))
        print(f"  {self.events[-1][0]:7.2f}s  {msg}", flush=True)

    def at(self, prefix: str) -> float:
        return next(t for t, m in self.events if m.startswith(prefix))

    def span(self, first: str, then: str) -> float:
        return self.at(then) - self.at(first)


def timed_up(name: str, hosts: int, release: str) -> tuple[float, Clock, sandbox.Sandbox]:
    clock = Clock()
    box = sandbox.up(name, hosts, release, progress=clock)
    return time.monotonic() - clock.start, clock, box


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree_pss_kib(root: int) -> int:
    kids = children_map()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += kids.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def mem_available_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


def table(rows: list[tuple[str, str, str]]) -> None:
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for r in rows:
        print(f"| {r[0]:<{w0}} | {r[1]:>{w1}} | {r[2]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default="bookworm", choices=sandbox.RELEASES)
    parser.add_argument("--guests", type=int, default=3, help="guests for the warm runs")
    parser.add_argument("--idle", type=float, default=15, help="idle seconds before memory")
    parser.add_argument("--warm-only", action="store_true", help="reuse the normal cache")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")

    work = Path(tempfile.mkdtemp(prefix="selfhost-bench-"))
    os.environ["SELFHOST_SANDBOX_DIR"] = str(work / "state")
    if not args.warm_only:
        os.environ["SELFHOST_CACHE_DIR"] = str(work / "cache")
    os.environ["SELFHOST_SANDBOX_SUBNET"] = free_subnet()
    rows: list[tuple[str, str, str]] = []
    fmt: Callable[[float], str] = lambda s: f"{s:.1f} s"  # noqa: E731
    try:
        mem_before = mem_available_kib()
        print(f"first guest ({'warm cache' if args.warm_only else 'cold, empty cache'}):")
        total, clock, box = timed_up("bench", 1, args.release)
        first = box.guests[0].name
        if not args.warm_only:
            rows.append(("cold rootfs build (debootstrap+pack)",
                         fmt(clock.span("building", f"extracting {first}")), "target <= 95 s"))
        rows.append(("first guest, total", fmt(total), ""))
        boots = [clock.span(f"booting {first}", f"{first} is")]
        extracts = [clock.span(f"extracting {first}", f"booting {first}")]
        warm_totals = []
        for n in range(2, args.guests + 1):
            print(f"guest {n} from the cache:")
            total, clock, box = timed_up("bench", n, args.release)
            g = box.guests[-1].name
            warm_totals.append(total)
            extracts.append(clock.span(f"extracting {g}", f"booting {g}"))
            boots.append(clock.span(f"booting {g}", f"{g} is"))
        if warm_totals:
            rows.append(("guest from cache, total (min-max)",
                         f"{fmt(min(warm_totals))}-{fmt(max(warm_totals))}", ""))
        rows.append(("extract cached tarball (min-max)",
                     f"{fmt(min(extracts))}-{fmt(max(extracts))}", "target 1-5 s"))
        rows.append(("boot to systemd running (min-max)",
                     f"{min(boots):.2f}-{max(boots):.2f} s", "target < 3 s"))
        print(f"a second sandbox of {args.guests} guests at once, from the cache:")
        total, clock, _ = timed_up("bench-par", args.guests, args.release)
        rows.append((f"sandbox of {args.guests} guests from cache, total", fmt(total),
                     "extracted in parallel"))
        print(f"idling {args.idle:.0f} s before measuring memory")
        time.sleep(args.idle)
        pss = [tree_pss_kib(g.pid) for g in box.guests if g.pid]
        drop = (mem_before - mem_available_kib()) / len(box.guests)
        rows.append(("memory per idle guest, PSS (min-max)",
                     f"{min(pss) / 1024:.0f}-{max(pss) / 1024:.0f} MiB", "process tree PSS"))
        rows.append(("host MemAvailable drop per guest", f"{drop / 1024:.0f} MiB",
                     "upper bound, includes page cache"))
        size = rootfs.cache_file(Paths.from_env(), args.release, rootfs.host_mirror())
        if size.exists():
            rows.append(("cached tarball", f"{size.stat().st_size / 1e6:.0f} MB", size.name))
    finally:
        sandbox.down("bench-par")
        t = time.monotonic()
        sandbox.down("bench")
        down_s = time.monotonic() - t
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)
    rows.append(("down of the last sandbox (guests, bridge, apt cache)", fmt(down_s), ""))
    print(f"\nDebian {args.release}, {os.cpu_count()} cores:")
    table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
