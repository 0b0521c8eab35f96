"""Time ``selfhost verify`` of an all-in-one deployment on one sandbox host.

Target: under 10 seconds for the whole verify (every check of the Plan).

    python bench/verify_bench.py --profile PROFILE --sandbox NAME [--runs 5]

The profile must already be deployed onto the sandbox (``selfhost deploy
PROFILE --sandbox NAME``); the script only reads the hosts. Each run is the
library call behind the command (profile loading, fact collection over ssh,
the pytest/testinfra suite and the reports), timed from start to result.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from host_bench import host_bench_args

from selfhost.verify import verify

TARGET_SECONDS = 10.0


def main() -> int:
    args = host_bench_args(__doc__)
    times: list[float] = []
    checks = failed = 0
    with tempfile.TemporaryDirectory(prefix="selfhost-bench-") as tmp:
        for run in range(args.runs):
            start = time.perf_counter()
            result = verify(args.profile, sandbox=args.sandbox, junit=Path(tmp) / "junit.xml",
                            json_path=Path(tmp) / "report.json")
            times.append(time.perf_counter() - start)
            checks, failed = len(result.results), len(result.failures)
            print(f"run {run + 1}: {times[-1]:.2f} s, {checks} checks, {failed} failed")
    median = statistics.median(times)
    verdict = "within" if median < TARGET_SECONDS else "OVER"
    print(f"verify of {args.profile} on {args.sandbox}: median {median:.2f} s "
          f"(min {min(times):.2f}, max {max(times):.2f}) over {args.runs} runs, "
          f"{checks} checks; {verdict} the {TARGET_SECONDS:.0f} s target")
    return 0 if median < TARGET_SECONDS and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
