"""Time ``selfhost subprocessors batch`` on generated prospects.

Target: 1,000 prospects in under 10 seconds on 2 cores, every format.

    python bench/batch_bench.py [--prospects 1000] [--format md ...]
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from selfhost.subprocessors.batch import run_batch
from selfhost.subprocessors.files import FORMATS, Format

TARGET_SECONDS = 10.0
_PRESETS = ["air-gapped", "eu-anthropic", "external-db", "split", "us-openai"]


def _row(i: int, rng: random.Random) -> dict[str, str]:
    preset = _PRESETS[i % len(_PRESETS)]
    row = {
        "preset": preset,
        "customer.name": f"Prospect {i} GmbH",
        "customer.id": f"prospect-{i:05d}",
        "customer.contact_email": f"dpo{i}@prospect{i}.example",
        "email.provider": "", "email.from_address": "", "monitoring.provider": "",
        "cdn.provider": "", "notice.days": str(rng.choice([14, 30, 60])),
    }
    if preset in ("air-gapped", "split"):
        row["email.provider"] = rng.choice(["none", "postmark", "ses", "sendgrid"])
        if row["email.provider"] != "none":
            row["email.from_address"] = f"support@prospect{i}.example"
        row["monitoring.provider"] = rng.choice(["none", "sentry", "datadog"])
        row["cdn.provider"] = rng.choice(["none", "cloudflare", "cloudfront"])
    return row


def write_prospects(path: Path, count: int) -> None:
    rng = random.Random(20261127)
    rows = [_row(i, rng) for i in range(count)]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prospects", type=int, default=1000)
    parser.add_argument("--format", dest="formats", action="append", choices=FORMATS)
    args = parser.parse_args()
    formats: tuple[Format, ...] = tuple(args.formats or FORMATS)
    with tempfile.TemporaryDirectory(prefix="selfhost-bench-") as tmp:
        prospects = Path(tmp) / "prospects.csv"
        write_prospects(prospects, args.prospects)
        start, cpu = time.perf_counter(), time.process_time()
        result = run_batch(prospects, Path(tmp) / "out", formats=formats,
                           on=date(2026, 11, 27))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        files = sum(len(r.files) for r in result.rows)
    failed = len(result.failed)
    verdict = "OK" if elapsed < TARGET_SECONDS and not failed else "TOO SLOW or FAILED"
    # CPU time beside wall time: on a shared machine the wall time includes
    # waiting for other processes.
    print(f"{args.prospects} prospects, formats {','.join(formats)}: {elapsed:.2f} s "
          f"(CPU {cpu:.2f} s), "
          f"{files} files, {failed} failed rows -> {verdict} (target < {TARGET_SECONDS:.0f} s)")
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
