"""The command line every benchmark against a deployed sandbox host takes."""

from __future__ import annotations

import argparse
from pathlib import Path


def host_bench_args(doc: str | None) -> argparse.Namespace:
    """``--profile P --sandbox NAME [--runs N]``: a profile deployed onto that sandbox,
    and how many timed runs (the median is reported)."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", type=Path, required=True)
    parser.add_argument("--sandbox", required=True)
    parser.add_argument("--runs", type=int, default=5)
    return parser.parse_args()
