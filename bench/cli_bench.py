"""CPU time of ``selfhost --help`` and of every command's ``--help``.

Target: under 0.3 s of CPU (user + sys) each, median of several fresh processes.
The command line imports a command's services only when the command runs, so
asking for help, or mistyping an option, stays quick.

    python bench/cli_bench.py [--runs 7] [--json]

Each run starts the installed ``selfhost`` script (beside this Python) in a new
process and reads its own CPU time from the kernel (``wait4``), so other load on
the machine barely moves the figure, unlike wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from selfhost.cli import main as cli_main

TARGET_CPU_SECONDS = 0.3


def command_paths(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from command_paths(sub, (*path, name))


def cpu_seconds(argv: list[str]) -> float:
    """User + sys CPU of one run of ``argv``, which must exit 0."""
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        err = child.stderr.read().decode() if child.stderr else ""
        raise SystemExit(f"{' '.join(argv)} exited {child.returncode}: {err}")
    if child.stderr:
        child.stderr.close()
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    script = Path(sys.executable).with_name("selfhost")
    if not script.is_file():
        raise SystemExit(f"{script} is missing: run scripts/setup first")
    figures: dict[str, dict[str, float]] = {}
    for path in command_paths(cli_main):
        argv = [str(script), *path, "--help"]
        times = [cpu_seconds(argv) for _ in range(args.runs)]
        figures[" ".join(("selfhost", *path, "--help"))] = {
            "median": statistics.median(times), "min": min(times), "max": max(times)}
    worst = max(figures.items(), key=lambda item: item[1]["median"])
    ok = worst[1]["median"] < TARGET_CPU_SECONDS
    if args.json:
        print(json.dumps({"runs": args.runs, "target_cpu_seconds": TARGET_CPU_SECONDS,
                          "ok": ok, "commands": figures}, indent=2))
    else:
        width = max(len(name) for name in figures)
        for name, fig in figures.items():
            print(f"{name:<{width}}  {fig['median']:.3f} s CPU median "
                  f"({fig['min']:.3f}-{fig['max']:.3f})")
        verdict = "within" if ok else "OVER"
        print(f"{len(figures)} commands, {args.runs} runs each; slowest: {worst[0]} "
              f"{worst[1]['median']:.3f} s; {verdict} the {TARGET_CPU_SECONDS} s target")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
