"""`selfhost upgrade` and `selfhost rollback` on one real guest (all-in-one, Debian 12):
the contract probe as v1 with a canary row, then a broken migration and a failing health
check that each end with v1 serving and the data intact (the migrated schema restored
from the pre-upgrade dump), v1 -> v2 with the data kept and the schema migrated, a
rollback by hand, and an upgrade killed mid-way that a second upgrade finishes.

A second guest runs Debian 13, where PostgreSQL is 17 rather than 15 (its own
``pg_dump``/``pg_restore``, cluster paths and dump format): there one test runs the
steps whose outcome depends on the database, the failing migration's restore and
v1 -> v2; the steps that do not touch PostgreSQL (signature, check, the kill) are
not repeated."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_support import PASSPHRASE, Deployment, release_profile, run_deploy, ssh

from conftest import SandboxFactory
from release_support import HEALTHZ, Keys, make_keys, probe_release
from selfhost.errors import DeployFailed, InvalidInput
from selfhost.layout import LAYOUT
from selfhost.release import NotGenuine
from selfhost.status.service import status
from selfhost.upgrade.service import RollbackOptions, UpgradeOptions, rollback, upgrade

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CANARY = "kept across upgrades"


@dataclass
class Site:
    deployment: Deployment
    releases: dict[str, Path]
    keys: Keys
    work: Path

    @property
    def guest(self) -> str:
        return self.deployment.box.guests[0].name

    def on_guest(self, *argv: str, timeout: float = 120) -> str:
        done = ssh(self.deployment.box, self.guest, *argv, timeout=timeout)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def sql(self, query: str) -> str:
        return self.on_guest("runuser", "-u", "postgres", "--", "psql", "-XAt", "-d",
                             self.deployment.plan.database.name, "-c", query).strip()

    def healthz(self) -> tuple[int, str, object]:
        answer = json.loads(self.on_guest("python3", "-c", HEALTHZ))
        return answer["status"], answer["report"]["release"], answer["report"]["schema_version"]

    def columns(self) -> list[str]:
        return self.sql("SELECT column_name FROM information_schema.columns WHERE "
                        "table_name = 'probe_canary' ORDER BY column_name").split()

    def host_record(self) -> dict[str, object]:
        return dict(json.loads(self.on_guest("cat", LAYOUT.deployment_record)))

    def controller_record(self) -> dict[str, object]:
        return dict(json.loads((self.deployment.profile_path.parent / ".selfhost"
                                / self.deployment.plan.customer.id
                                / "deployment.json").read_text()))

    def records_name(self, version: str) -> None:
        """The guest's deployment record and the controller's name the probe's release
        ``version`` (and the host's is still the one the verify check accepts)."""
        expected = {"name": "contract-probe", "version": version}
        assert (self.host_record().get("release"), self.controller_record().get("release")
                ) == (expected, expected)

    def status_names(self, release: str) -> None:
        """`selfhost status` shows ``release`` for the guest: the drift check the
        record action starts reads the record anew (it runs in the background)."""
        deadline = time.monotonic() + 120
        while True:
            shown = status(self.deployment.profile_path,
                           sandbox=self.deployment.box.name).hosts[0].release
            if shown == release or time.monotonic() > deadline:
                break
            time.sleep(3)
        assert shown == release

    def options(self, kind: str, **extra: object) -> UpgradeOptions:
        return UpgradeOptions(release=self.releases[kind], sandbox=self.deployment.box.name,
                              passphrase=PASSPHRASE, **extra)  # type: ignore[arg-type]


def _deploy_v1(sandbox_factory: SandboxFactory, work: Path, release: str) -> Site:
    """The contract probe deployed as v1 onto a fresh guest of ``release``, its
    migration run and the canary row written."""
    box = sandbox_factory(f"upgrade-{release}", 1, release, image="server")
    keys = make_keys(work)
    releases = {}
    for kind in ("v1", "v2", "v2-broken-migration", "v2-unhealthy"):
        (work / kind).mkdir()
        releases[kind] = probe_release(work / kind, kind, keys)  # type: ignore[arg-type]
    shutil.copyfile(releases["v1"], work / "release.tar.gz")
    profile = release_profile(work, box, keys.public)
    deployment = Deployment("air-gapped", release, profile, box)
    run_deploy(deployment, work, label="v1").require()
    the_site = Site(deployment, releases, keys, work)
    # v1's own migration, as its installation runs it; then the canary row
    the_site.on_guest(
        "systemd-run", "--wait", "--pipe", "--quiet", f"--property=User={LAYOUT.app_user}",
        f"--property=EnvironmentFile={LAYOUT.app_env_file}",
        f"--property=WorkingDirectory={LAYOUT.app_current}", "--",
        "/usr/bin/python3", "contract_probe_migrate.py", "--to", "1")
    the_site.on_guest("systemctl", "restart", LAYOUT.app_unit)
    the_site.sql(f"INSERT INTO probe_canary (value) VALUES ('{CANARY}')")
    deadline = time.monotonic() + 60
    while the_site.healthz()[0] != 200 and time.monotonic() < deadline:
        time.sleep(2)
    assert the_site.healthz() == (200, "1.0", 1)
    return the_site


@pytest.fixture(scope="module")
def site(sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
         ) -> Site:
    return _deploy_v1(sandbox_factory, tmp_path_factory.mktemp("upgrade"), "bookworm")


def _v1_serving_with_data(site: Site) -> None:
    assert site.healthz() == (200, "1.0", 1)
    assert site.sql("SELECT value FROM probe_canary") == CANARY
    # the restored schema: v2's column is gone with the migration
    assert site.columns() == ["id", "value"]
    assert site.on_guest("readlink", LAYOUT.app_current).strip().endswith("/releases/1.0")


def test_deploy_records_the_release_on_the_host_and_the_controller(site: Site) -> None:
    site.records_name("1.0")
    site.status_names("contract-probe 1.0")


def test_check_shows_the_steps_and_changes_nothing(site: Site) -> None:
    before = site.host_record()
    done = subprocess.run(
        [sys.executable, "-m", "selfhost.cli.app", "upgrade", str(site.deployment.profile_path),
         "--release", str(site.releases["v2"]), "--sandbox", site.deployment.box.name,
         "--check", "--skip-verify", "--json"], capture_output=True, text=True, timeout=600,
        env={**os.environ, "SELFHOST_PASSPHRASE": PASSPHRASE}, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["from"], result["to"], result["check"], result["migrations"]) == (
        "1.0", "2.0", True, ["schema-2"])
    assert any(s.startswith("switch chat1 from 1.0 to 2.0") for s in result["steps"])
    assert result["subprocessors"] == ["no subprocessor change"]
    assert site.healthz() == (200, "1.0", 1)
    assert site.on_guest("ls", LAYOUT.app_releases_dir).split() == ["1.0"]
    assert site.host_record() == before


def test_a_release_signed_by_another_key_is_refused(site: Site) -> None:
    other = make_keys(site.work, "other")
    (site.work / "other-v2").mkdir()
    forged = probe_release(site.work / "other-v2", "v2", other)
    with pytest.raises(NotGenuine) as refused:
        upgrade(site.deployment.profile_path, UpgradeOptions(
            release=forged, sandbox=site.deployment.box.name, passphrase=PASSPHRASE))
    assert "which is not trusted" in refused.value.message
    assert refused.value.exit_code == 2
    assert site.healthz() == (200, "1.0", 1)


def test_a_failing_migration_rolls_back_to_v1_with_the_data(site: Site) -> None:
    with pytest.raises(DeployFailed) as failed:
        upgrade(site.deployment.profile_path, site.options("v2-broken-migration",
                                                           skip_verify=True))
    assert "failed at migrate" in failed.value.message
    assert "the database restored from the pre-upgrade dump" in failed.value.message
    _v1_serving_with_data(site)


def test_a_failing_health_check_rolls_back_to_v1_and_its_schema(site: Site) -> None:
    with pytest.raises(DeployFailed) as failed:
        upgrade(site.deployment.profile_path, site.options("v2-unhealthy", skip_verify=True))
    assert "failed at switch" in failed.value.message
    assert "every app host back on 1.0" in failed.value.message
    # the migration had added written_at; only the dump's restore takes it away
    _v1_serving_with_data(site)
    site.records_name("1.0")


def test_v1_to_v2_keeps_the_data_and_migrates_the_schema(site: Site) -> None:
    result = upgrade(site.deployment.profile_path, site.options("v2"))
    assert (result.from_version, result.to_version, result.resumed) == ("1.0", "2.0", False)
    assert site.healthz() == (200, "2.0", 2)
    assert site.sql("SELECT value FROM probe_canary") == CANARY
    assert site.columns() == ["id", "value", "written_at"]
    assert sorted(site.on_guest("ls", LAYOUT.app_releases_dir).split()) == ["1.0", "2.0"]
    site.records_name("2.0")
    site.status_names("contract-probe 2.0")
    with pytest.raises(InvalidInput, match="already runs on every app host"):
        upgrade(site.deployment.profile_path, site.options("v2", skip_verify=True))


def test_rollback_by_hand_returns_to_v1_and_its_database(site: Site) -> None:
    result = rollback(site.deployment.profile_path, RollbackOptions(
        sandbox=site.deployment.box.name, passphrase=PASSPHRASE, yes=True))
    assert (result.to_version, result.database_restored) == ("1.0", True)
    _v1_serving_with_data(site)
    site.records_name("1.0")
    site.status_names("contract-probe 1.0")


def test_an_upgrade_killed_mid_way_is_finished_by_the_next(site: Site) -> None:
    env = {**os.environ, "SELFHOST_PASSPHRASE": PASSPHRASE}
    cli = [sys.executable, "-m", "selfhost.cli.app", "upgrade",
           str(site.deployment.profile_path), "--release", str(site.releases["v2"]),
           "--sandbox", site.deployment.box.name, "--skip-verify"]
    proc = subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "running the migrations" in line:
            break
    # the dump is taken and the state file says the upgrade began: the migrations'
    # run is starting on the guest when the controller dies
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert any("running the migrations" in line for line in seen), "".join(seen)

    result = upgrade(site.deployment.profile_path, site.options("v2", skip_verify=True))
    assert result.resumed
    assert site.healthz() == (200, "2.0", 2)
    site.records_name("2.0")
    assert site.sql("SELECT value FROM probe_canary") == CANARY
    assert site.columns() == ["id", "value", "written_at"]


def test_on_debian_13_a_failing_migration_rolls_back_and_v1_to_v2_migrates(
        sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory) -> None:
    trixie = _deploy_v1(sandbox_factory, tmp_path_factory.mktemp("upgrade-trixie"), "trixie")
    assert trixie.on_guest("pg_lsclusters", "-h").split()[0] == "17"
    with pytest.raises(DeployFailed) as failed:
        upgrade(trixie.deployment.profile_path, trixie.options("v2-broken-migration",
                                                               skip_verify=True))
    assert "failed at migrate" in failed.value.message
    assert "the database restored from the pre-upgrade dump" in failed.value.message
    _v1_serving_with_data(trixie)

    result = upgrade(trixie.deployment.profile_path, trixie.options("v2"))
    assert (result.from_version, result.to_version) == ("1.0", "2.0")
    assert trixie.healthz() == (200, "2.0", 2)
    assert trixie.sql("SELECT value FROM probe_canary") == CANARY
    assert trixie.columns() == ["id", "value", "written_at"]
