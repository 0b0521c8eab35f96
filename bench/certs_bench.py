"""Time ``selfhost certs`` of an all-in-one deployment on one sandbox host.

Target: under 5 seconds for the whole command, as a user runs it (a process of
its own: start-up, profile loading, one ssh command to the host, parsing).

    python bench/certs_bench.py --profile PROFILE --sandbox NAME [--runs 5]

The profile must already be deployed onto the sandbox (``selfhost deploy
PROFILE --sandbox NAME``); the script only reads the hosts.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from host_bench import host_bench_args

TARGET_SECONDS = 5.0
SELFHOST = str(Path(sys.executable).with_name("selfhost"))


def main() -> int:
    args = host_bench_args(__doc__)
    times: list[float] = []
    listed = 0
    for run in range(args.runs):
        start = time.perf_counter()
        done = subprocess.run([SELFHOST, "certs", str(args.profile), "--sandbox",
                               args.sandbox, "--json"], capture_output=True, text=True,
                              check=False)
        times.append(time.perf_counter() - start)
        if done.returncode not in (0, 1):
            print(done.stderr, file=sys.stderr)
            return 1
        report = json.loads(done.stdout)
        listed = sum(len(h["certificates"]) for h in report["hosts"].values())
        print(f"run {run + 1}: {times[-1]:.2f} s, {listed} certificates, "
              f"exit {done.returncode}")
    median = statistics.median(times)
    verdict = "within" if median < TARGET_SECONDS else "OVER"
    print(f"certs of {args.profile} on {args.sandbox}: median {median:.2f} s "
          f"(min {min(times):.2f}, max {max(times):.2f}) over {args.runs} runs, "
          f"{listed} certificates; {verdict} the {TARGET_SECONDS:.0f} s target")
    return 0 if median < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
