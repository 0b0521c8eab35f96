"""Backup and restore timings for a 100 MB database, for the README.

    python bench/restore_bench.py [--megabytes 100] [--release bookworm] [--json FILE]

On a private sandbox (own state dir and subnet): deploys the air-gapped preset onto
one guest, fills the app's database with about ``--megabytes`` MB of rows (as
``pg_database_size`` counts them), times ``selfhost backup``, then ``selfhost
restore`` onto a second, fresh guest, phase by phase (archive check, deploy,
database, verify). Needs root (sandbox guests).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from db_fill import fill_database

from selfhost import sandbox
from selfhost.backup.service import create
from selfhost.deploy import DeployOptions, deploy
from selfhost.init import InitRequest, run_init
from selfhost.paths import preset_path
from selfhost.plan import plan
from selfhost.profile_io import load_profile
from selfhost.workflows.restore import restore

SUBNET = "10.213.91.0/24"
DATABASE = plan(load_profile(preset_path("air-gapped"))).database.name
PASSPHRASE = "bench-passphrase-not-secret"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--release", default="bookworm")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="selfhost-restore-bench-"))
    os.environ.update({"SELFHOST_SANDBOX_DIR": str(work / "state"),
                       "SELFHOST_SANDBOX_SUBNET": SUBNET, "SELFHOST_PASSPHRASE": PASSPHRASE})
    profile = work / "bench.yaml"
    run_init(InitRequest(output=profile, preset="air-gapped", force=True,
                         passphrase=PASSPHRASE, environ={}), None, None)
    figures: dict[str, float] = {}
    try:
        src = sandbox.up("rb-src", 1, args.release)
        deploy(profile, DeployOptions(sandbox=src.name, yes=True, passphrase=PASSPHRASE))
        figures["database_bytes"] = float(fill_database(src, DATABASE, args.megabytes))
        started = time.monotonic()
        made = create(profile, sandbox=src.name, passphrase=PASSPHRASE)
        figures["backup_seconds"] = time.monotonic() - started
        figures["archive_bytes"] = float(made.bytes)
        sandbox.down(src.name)
        dst = sandbox.up("rb-dst", 1, args.release)
        result = restore(profile, made.path, sandbox_name=dst.name, passphrase=PASSPHRASE)
        figures["restore_seconds"] = result.seconds
        figures.update({f"restore_{k}_seconds": v for k, v in result.phases.items()})
        figures["verify_ok"] = float(result.verification.ok)
    finally:
        sandbox.down_all()
    text = json.dumps({k: round(v, 2) for k, v in figures.items()}, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
