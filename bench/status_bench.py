"""Time ``selfhost status`` of an all-in-one deployment on one sandbox host.

Target: under 5 seconds for the whole command (profile and Plan, one ssh round trip
per host reading the drift watch's status file, the judgement).

    python bench/status_bench.py --profile PROFILE --sandbox NAME [--runs 5]

The profile must already be deployed onto the sandbox (``selfhost deploy PROFILE
--sandbox NAME``); the script only reads the hosts. Each run is the command itself,
in a fresh process (``python -m selfhost.cli.app status``), so Python's start and the
imports count as an operator would see them.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from host_bench import host_bench_args

TARGET_SECONDS = 5.0


def main() -> int:
    args = host_bench_args(__doc__)
    times: list[float] = []
    for run in range(args.runs):
        start = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "selfhost.cli.app", "status",
                              str(args.profile), "--sandbox", args.sandbox, "--json"],
                             capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        print(f"run {run + 1}: {times[-1]:.2f} s (exit {res.returncode})")
        if res.returncode not in (0, 1):
            print(res.stderr, file=sys.stderr)
            return 2
    median = statistics.median(times)
    print(f"median {median:.2f} s, max {max(times):.2f} s (target < {TARGET_SECONDS:.0f} s)")
    return 0 if median < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
