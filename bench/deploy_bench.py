"""Deploy timings on sandbox guests, for the README.

    python bench/deploy_bench.py [--preset air-gapped] [--release bookworm]
                                 [--noop-runs 3] [--skip-cold-apt] [--json FILE]

Measures, on fresh Debian guests of a private sandbox (own state dir and subnet):

1. cold deploy, apt cache cold: a fresh guest and an empty apt-cacher-ng cache
   (the rootfs cache is shared, so no debootstrap is timed);
2. cold deploy, apt cache warm: another fresh guest, packages now cached;
3. no-op redeploy through ``selfhost deploy`` with Mitogen (the default engine);
4. no-op redeploy through ``selfhost deploy --engine plain``;
5. the same playbook, inventory, extra vars and secrets through plain
   ``ansible-playbook`` (linear strategy), run directly;

and reports the medians and the ratio Mitogen / plain ansible-playbook.
Goal: no-op redeploy under 8 s and at most half of plain ansible-playbook.
Needs root (sandbox guests).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selfhost import sandbox
from selfhost.deploy import DeployOptions, deploy
from selfhost.deploy.service import prepare
from selfhost.init import InitRequest, run_init
from selfhost.workflows.demo import address_sets

SUBNET = "10.213.90.0/24"
PASSPHRASE = "bench-passphrase-not-secret"


@contextmanager
def private_sandbox_env(cold_apt: bool) -> Iterator[Path]:
    """Own sandbox state dir (so its own apt-cacher-ng) and, for a cold apt cache,
    an empty cache dir that still shares the built rootfs tarballs."""
    work = Path(tempfile.mkdtemp(prefix="selfhost-bench-"))
    state = work / "state"
    cache = work / "cache"
    shared_cache = Path(os.environ.get("SELFHOST_CACHE_DIR", "/var/cache/selfhost"))
    if cold_apt:
        cache.mkdir()
        (shared_cache / "sandbox-rootfs").mkdir(parents=True, exist_ok=True)
        (cache / "sandbox-rootfs").symlink_to(shared_cache / "sandbox-rootfs")
    saved = {k: os.environ.get(k) for k in ("SELFHOST_SANDBOX_DIR", "SELFHOST_CACHE_DIR",
                                            "SELFHOST_SANDBOX_SUBNET", "SELFHOST_PASSPHRASE")}
    os.environ.update({"SELFHOST_SANDBOX_DIR": str(state),
                       "SELFHOST_CACHE_DIR": str(cache if cold_apt else shared_cache),
                       "SELFHOST_SANDBOX_SUBNET": SUBNET, "SELFHOST_PASSPHRASE": PASSPHRASE})
    try:
        yield work
    finally:
        sandbox.down_all()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(work, ignore_errors=True)


def profile_on(work: Path, name: str, preset: str, release: str, image: str = "base"
               ) -> Path:
    box = sandbox.up(name, 1, release, image=image)
    output = work / f"{name}.yaml"
    run_init(InitRequest(output=output, preset=preset, force=True, passphrase=PASSPHRASE,
                         sets=address_sets(preset, [box.guests[0].address])), None, None)
    return output


def selfhost_deploy(profile: Path, sandbox_name: str, engine: str, *, noop: bool = True
                    ) -> float:
    result = deploy(profile, DeployOptions(sandbox=sandbox_name, yes=True, engine=engine,
                                           passphrase=PASSPHRASE))
    if result.changed and noop:
        print(f"  note: {result.changed} change(s) in a run expected to be a no-op")
    return result.seconds


def plain_ansible_playbook(profile: Path, sandbox_name: str) -> float:
    """The same playbook run directly with ansible-playbook: the yardstick."""
    prepared = prepare(profile, DeployOptions(sandbox=sandbox_name, passphrase=PASSPHRASE))
    with tempfile.TemporaryDirectory(prefix="selfhost-bench-plain-") as tmp:
        inventory = Path(tmp) / "inventory.json"
        extravars = Path(tmp) / "extravars.json"
        inventory.write_text(json.dumps(prepared.target.inventory))
        extravars.write_text(json.dumps(prepared.extravars))
        env = dict(os.environ)
        env.update(prepared.secret_env)
        env["ANSIBLE_CONFIG"] = str(prepared.playbook.parent / "ansible.cfg")
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
        command = ["ansible-playbook", "-i", str(inventory), "-e", f"@{extravars}",
                   str(prepared.playbook)]
        start = time.monotonic()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"plain ansible-playbook failed (rc {done.returncode}):\n"
                         f"{done.stdout[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="air-gapped")
    parser.add_argument("--release", default="bookworm", choices=("bookworm", "trixie"))
    parser.add_argument("--noop-runs", type=int, default=3)
    parser.add_argument("--skip-cold-apt", action="store_true")
    parser.add_argument("--image", default="base", choices=("base", "server"),
                        help="the guests' rootfs image (server: packages preinstalled)")
    parser.add_argument("--cold-engine", default="mitogen", choices=("mitogen", "plain"),
                        help="engine of the two cold deploys (the no-op runs use both)")
    parser.add_argument("--json", type=Path, default=None, help="also write figures here")
    args = parser.parse_args()
    figures: dict[str, float] = {}

    if not args.skip_cold_apt:
        with private_sandbox_env(cold_apt=True) as work:
            profile = profile_on(work, "bench-cold", args.preset, args.release, args.image)
            cold = selfhost_deploy(profile, "bench-cold", args.cold_engine, noop=False)
            figures["cold deploy, apt cache cold (s)"] = cold
            print(f"cold deploy, apt cache cold: {cold:.1f} s")

    with private_sandbox_env(cold_apt=False) as work:
        profile = profile_on(work, "bench-warm", args.preset, args.release, args.image)
        warm = selfhost_deploy(profile, "bench-warm", args.cold_engine, noop=False)
        figures["cold deploy, apt cache warm (s)"] = warm
        print(f"cold deploy, apt cache warm: {warm:.1f} s")
        runs: dict[str, list[float]] = {"mitogen": [], "plain-engine": [], "ansible-playbook": []}
        for _ in range(args.noop_runs):
            runs["mitogen"].append(selfhost_deploy(profile, "bench-warm", "mitogen"))
            runs["plain-engine"].append(selfhost_deploy(profile, "bench-warm", "plain"))
            runs["ansible-playbook"].append(plain_ansible_playbook(profile, "bench-warm"))
        for name, values in runs.items():
            print(f"no-op redeploy, {name}: " + ", ".join(f"{v:.1f}" for v in values) + " s")
        figures["no-op redeploy, mitogen (s)"] = statistics.median(runs["mitogen"])
        figures["no-op redeploy, --engine plain (s)"] = statistics.median(runs["plain-engine"])
        figures["no-op, plain ansible-playbook (s)"] = statistics.median(
            runs["ansible-playbook"])
        figures["ratio mitogen / plain ansible-playbook"] = (
            figures["no-op redeploy, mitogen (s)"] / figures["no-op, plain ansible-playbook (s)"])

    load = os.getloadavg()[0]
    print(f"\nfigures (preset {args.preset}, Debian {args.release}, {args.image} image, "
          f"cold deploys with "
          f"{args.cold_engine}, load {load:.1f}):")
    for name, value in figures.items():
        print(f"  {name:<42} {value:8.2f}")
    goal = (figures["no-op redeploy, mitogen (s)"] < 8
            and figures["ratio mitogen / plain ansible-playbook"] <= 0.5)
    print(f"goal (no-op < 8 s and <= half of plain): {'met' if goal else 'NOT met'}")
    if args.json is not None:
        args.json.write_text(json.dumps({"preset": args.preset, "release": args.release,
                                         "image": args.image,
                                         "load": load, **figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
