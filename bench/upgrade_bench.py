"""Upgrade and rollback timings on a sandbox guest, for the README.

    python bench/upgrade_bench.py [--release bookworm] [--megabytes 100] [--verify]
                                  [--subnet 10.213.91.0/24] [--json FILE]

On a fresh all-in-one guest of a private sandbox (own state dir and subnet): the
contract probe deployed as release v1 (its migration run, a canary row written), its
database filled to about ``--megabytes`` MB as the restore benchmark fills it, then
times

1. an upgrade to a v2 whose migration fails, rolled back on its own (pre-upgrade
   dump, the failing migration, the database restored from the dump, v1 serving);
2. ``selfhost upgrade`` v1 -> v2 (pre-upgrade dump, a real ALTER TABLE migration,
   the switch gated by /healthz; with ``--verify`` also verify before and after);
3. ``selfhost rollback`` back to v1, the database restored from the dump.

After each step the canary row must still be there. Needs root (sandbox guests).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from db_fill import fill_database

from release_support import make_keys, probe_release
from selfhost import sandbox
from selfhost.deploy import DeployOptions, deploy
from selfhost.errors import DeployFailed
from selfhost.init import InitRequest, run_init
from selfhost.layout import LAYOUT
from selfhost.plan import plan
from selfhost.profile_io import load_profile
from selfhost.upgrade.service import (
    RollbackOptions,
    UpgradeOptions,
    rollback,
    upgrade,
)
from selfhost.workflows.demo import address_sets

PASSPHRASE = "bench-passphrase-not-secret"
CANARY = "kept across upgrades"
FAKE_KEYS = {"SELFHOST_OPENAI_API_KEY": "sk-bench-not-a-key",
             "SELFHOST_ANTHROPIC_API_KEY": "sk-ant-bench-not-a-key"}


def _on_guest(box: sandbox.Sandbox, *argv: str) -> str:
    done = subprocess.run(box.ssh_command(box.guests[0], *argv), capture_output=True,
                          text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default="bookworm", choices=["bookworm", "trixie"])
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--verify", action="store_true")
    parser.add_argument("--subnet", default="10.213.91.0/24")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="selfhost-upgrade-bench-"))
    os.environ.update({"SELFHOST_SANDBOX_DIR": str(work / "state"),
                       "SELFHOST_SANDBOX_SUBNET": args.subnet})
    try:
        keys = make_keys(work)
        releases = {}
        for kind in ("v1", "v2", "v2-broken-migration"):
            (work / kind).mkdir()
            releases[kind] = probe_release(work / kind, kind, keys)
        shutil.copyfile(releases["v1"], work / "release.tar.gz")
        box = sandbox.up("upbench", 1, args.release)
        profile = work / "p.yaml"
        run_init(InitRequest(
            output=profile, preset="air-gapped", passphrase=PASSPHRASE, environ=FAKE_KEYS,
            sets=(*address_sets("air-gapped", [box.guests[0].address]),
                  "app.release=release.tar.gz", f"app.release_keys=[{keys.public.name}]")),
            None, None)
        deploy(profile, DeployOptions(sandbox=box.name, yes=True, passphrase=PASSPHRASE))
        database = plan(load_profile(profile)).database.name
        if database is None:
            raise SystemExit("the air-gapped preset has no local database to time")
        _on_guest(box, "systemd-run", "--wait", "--pipe", "--quiet",
                  f"--property=User={LAYOUT.app_user}",
                  f"--property=EnvironmentFile={LAYOUT.app_env_file}",
                  f"--property=WorkingDirectory={LAYOUT.app_current}", "--",
                  "/usr/bin/python3", "contract_probe_migrate.py", "--to", "1")
        _on_guest(box, "runuser", "-u", "postgres", "--", "psql", "-XAtq", "-d", database,
                  "-c", f"INSERT INTO probe_canary (value) VALUES ('{CANARY}')")
        size = fill_database(box, database, args.megabytes)

        def canary_intact(after: str) -> None:
            rows = _on_guest(box, "runuser", "-u", "postgres", "--", "psql", "-XAt", "-d",
                             database, "-c", "SELECT value FROM probe_canary").split("\n")
            if rows[0] != CANARY:
                raise SystemExit(f"the canary row is gone after {after}: {rows!r}")

        started = time.perf_counter()
        try:
            upgrade(profile, UpgradeOptions(release=releases["v2-broken-migration"],
                                            sandbox=box.name, passphrase=PASSPHRASE,
                                            skip_verify=not args.verify))
        except DeployFailed:
            pass
        else:
            raise SystemExit("the upgrade with the failing migration succeeded")
        failed_s = time.perf_counter() - started
        canary_intact("the automatic rollback")
        started = time.perf_counter()
        upgrade(profile, UpgradeOptions(release=releases["v2"], sandbox=box.name,
                                        passphrase=PASSPHRASE, skip_verify=not args.verify))
        upgrade_s = time.perf_counter() - started
        canary_intact("the upgrade")
        started = time.perf_counter()
        rollback(profile, RollbackOptions(sandbox=box.name, passphrase=PASSPHRASE, yes=True))
        rollback_s = time.perf_counter() - started
        canary_intact("the rollback")
    finally:
        sandbox.down_all()
        shutil.rmtree(work, ignore_errors=True)

    figures = {"release": args.release, "database_bytes": size, "verify": args.verify,
               "failed_upgrade_rolled_back_seconds": round(failed_s, 1),
               "upgrade_seconds": round(upgrade_s, 1),
               "rollback_seconds": round(rollback_s, 1)}
    print(json.dumps(figures, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
