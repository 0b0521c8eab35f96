"""`deploy --prune` and `selfhost destroy` on real Debian 12 and 13 guests.

Per release one guest (the packages removed differ: PostgreSQL 15 and 17, their
clusters, Redis 7 and 8), deployed once (air-gapped: PostgreSQL, Redis, backups, proxy,
firewall), with a bystander before the deploy: a Debian package and an nft table
of the host's own. The tests run in order on that deployment: a declined prune
removes nothing, a prune removes the backups the profile dropped, a declined
destroy removes nothing, a destroy removes everything selfhost put there (seen
with the guest's own commands: systemctl, getent, dpkg-query, nft, ls) and leaves
the bystanders, a second destroy is a no-op.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from deploy_support import (
    PASSPHRASE,
    RELEASES,
    Deployment,
    make_profile,
    run_deploy,
    secret_values,
)
from ruamel.yaml import YAML

from conftest import SandboxFactory
from selfhost import sandbox as sandbox_mod
from selfhost.cli.app import main
from selfhost.deploy import DeployOptions, deploy
from selfhost.deploy.record import state_dir
from selfhost.deploy.teardown import Removal, remove
from selfhost.errors import Aborted
from selfhost.layout import LAYOUT
from selfhost.profile_io import load_profile
from selfhost.subprocessors.archive import archive_path
from selfhost.subprocessors.publishing import publish
from selfhost.subprocessors.render import today
from selfhost.subprocessors.signing import generate_keys
from selfhost.targets import resolve_target

pytestmark = pytest.mark.slow

PRESET = "air-gapped"
#: a small Debian package selfhost never installs
BYSTANDER_PACKAGE = "tree"
BYSTANDER_TABLE = "bystander_fw"
#: packages the deploy installs on a minimal guest (and destroy must purge)
INSTALLED_BY_SELFHOST = ("nginx", "squid", "redis-server", "postgresql")


@dataclass
class Host:
    box: sandbox_mod.Sandbox
    guest: str
    profile: Path
    sign_key: Path
    deployment: Deployment

    def run(self, *argv: str, timeout: float = 120, input_text: str | None = None
            ) -> tuple[int, str]:
        done = subprocess.run(self.box.ssh_command(self.guest, *argv), capture_output=True,
                              text=True, timeout=timeout, check=False, input=input_text)
        return done.returncode, done.stdout + done.stderr

    def out(self, *argv: str, input_text: str | None = None) -> str:
        rc, text = self.run(*argv, input_text=input_text)
        assert rc == 0, f"{argv} failed on the guest: {text}"
        return text

    def package_status(self, name: str) -> str:
        _, text = self.run("dpkg-query", "-W", "-f=${db:Status-Status}", name)
        return text.strip()

    def exists(self, path: str) -> bool:
        return self.run("test", "-e", path)[0] == 0


def _set_backups(profile: Path, enabled: bool) -> None:
    yaml = YAML()
    data = yaml.load(profile.read_text())
    data.setdefault("backups", {})["enabled"] = enabled
    with profile.open("w") as handle:
        yaml.dump(data, handle)


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"SELFHOST_PASSPHRASE": PASSPHRASE},
                                catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture(scope="module", params=RELEASES)
def host(request: pytest.FixtureRequest, sandbox_factory: SandboxFactory,
         tmp_path_factory: pytest.TempPathFactory) -> Host:
    # Module-scoped and parametrized: pytest runs every test on one release's guest,
    # in file order, before the next release's.
    release: str = request.param
    box = sandbox_factory(f"d{release[:2]}-destroy", 1, release)
    guest = box.guests[0].name
    work = tmp_path_factory.mktemp(f"destroy-{release}")
    profile = make_profile(work, PRESET, box)
    keys = generate_keys(work / "sign.key", work / "sign.pub")
    deployment = Deployment(PRESET, release, profile, box)
    made = Host(box, guest, profile, keys.private_key, deployment)
    # The host's own software, there before selfhost: a package, nftables and a table.
    made.out("sh", "-c", "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive "
             f"apt-get install -y -q {BYSTANDER_PACKAGE} nftables >/dev/null")
    made.out("nft", "add", "table", "inet", BYSTANDER_TABLE)
    made.out("nft", "add", "chain", "inet", BYSTANDER_TABLE, "keep")
    run_deploy(deployment, work, label="first").require()
    publish(profile, keys.private_key, on=today())
    return made


def test_a_declined_prune_removes_nothing(host: Host) -> None:
    _set_backups(host.profile, False)
    try:
        with pytest.raises(Aborted) as caught:
            deploy(host.profile, DeployOptions(sandbox=host.box.name, passphrase=PASSPHRASE,
                                               prune=True),
                   confirm=lambda question: False)
    finally:
        _set_backups(host.profile, True)
    assert int(caught.value.exit_code) == 6
    assert host.exists(f"/etc/systemd/system/{LAYOUT.backup_timer}")
    assert host.out("systemctl", "is-enabled", LAYOUT.backup_timer).strip() == "enabled"


def test_prune_removes_the_component_the_profile_dropped(host: Host) -> None:
    _set_backups(host.profile, False)
    asked: list[str] = []
    try:
        result = deploy(host.profile, DeployOptions(sandbox=host.box.name,
                                                    passphrase=PASSPHRASE, prune=True),
                        confirm=lambda question: asked.append(question) or True)
    finally:
        _set_backups(host.profile, True)
    host_name = result.plan.hosts[0].name
    assert len(asked) == 1
    assert f"{host_name}: backup" in asked[0]
    assert result.pruned == {host_name: ["backup"]}
    assert not host.exists(f"/etc/systemd/system/{LAYOUT.backup_timer}")
    assert not host.exists(LAYOUT.backup_script)
    assert not host.exists(LAYOUT.backup_key)
    # What the profile still uses keeps running, the firewall included.
    assert host.out("systemctl", "is-active", LAYOUT.app_unit).strip() == "active"
    assert "table inet backend_chat" in host.out("nft", "list", "tables")
    # Backups back for the destroy's final backup.
    run_deploy(host.deployment, host.profile.parent, label="backups-again").require()
    assert host.exists(f"/etc/systemd/system/{LAYOUT.backup_timer}")


def test_removed_database_and_cache_data_is_archived_first(host: Host) -> None:
    """The step `deploy --prune` runs for a dropped database and cache, on real data."""
    the_plan = host.deployment.plan
    name, db, cache = the_plan.hosts[0].name, the_plan.database.name, the_plan.cache
    marker = "prune-marker-" + secrets.token_hex(6)
    password = secret_values(host.profile)["cache_password"]
    host.out("runuser", "-u", "postgres", "--", "psql", "-v", "ON_ERROR_STOP=1", "-d", db,
             "-c", f"CREATE TABLE prune_marker (v text); INSERT INTO prune_marker VALUES "
             f"('{marker}')")
    host.out("sh", "-c", f"REDISCLI_AUTH=$(cat) redis-cli --user {cache.user} -p {cache.port} "
             f"SET prune-marker {marker}", input_text=password)
    target = resolve_target(load_profile(host.profile), sandbox=host.box.name,
                            source=host.profile)
    removal = Removal(components={name: ["postgresql", "redis"]})
    remove(target, removal, engine="mitogen", timeout=600)

    dump, rdb = removal.archives(the_plan)[name]
    assert marker in host.out("sh", "-c", f"pg_restore -f - {dump}")
    assert host.out("head", "-c", "5", rdb) == "REDIS"
    assert host.run("grep", "-c", marker, rdb)[0] == 0
    assert host.out("stat", "-c", "%a %U", str(Path(dump).parent)).strip() == "700 root"
    # The database is gone (its role too), the cache is stopped.
    databases = host.out("runuser", "-u", "postgres", "--", "psql", "-Atc",
                         "SELECT datname FROM pg_database")
    assert db not in databases.split()
    assert host.run("systemctl", "is-active", LAYOUT.redis_unit)[1].strip() == "inactive"
    # A redeploy brings both back for the rest of the module.
    run_deploy(host.deployment, host.profile.parent, label="services-again").require()


def test_a_declined_destroy_exits_6_and_removes_nothing(host: Host) -> None:
    # CliRunner's stdin is no terminal: without --yes-i-really-mean-it nobody confirmed.
    code, output = _cli("destroy", str(host.profile), "--sandbox", host.box.name,
                        "--sign-key", str(host.sign_key))
    assert code == 6, output
    assert "--yes-i-really-mean-it" in output
    assert host.out("systemctl", "is-active", LAYOUT.app_unit).strip() == "active"
    assert host.exists(LAYOUT.config_dir)


def test_destroy_removes_the_deployment_and_keeps_the_bystanders(host: Host) -> None:
    code, output = _cli("destroy", str(host.profile), "--sandbox", host.box.name,
                        "--yes-i-really-mean-it", "--sign-key", str(host.sign_key), "--json")
    assert code == 0, output
    report = json.loads(output[output.index("{\n"):])
    customer = report["customer_id"]

    # The final backup is on the controller, where the output says, non-empty.
    backups = [Path(p) for paths in report["final_backups"].values() for p in paths]
    assert len(backups) == 1, report
    assert backups[0].is_relative_to(state_dir(host.profile, customer) / "final-backups")
    assert backups[0].stat().st_size > 0

    # Nothing of the deployment is left, by the guest's own commands.
    # (systemctl exits 1 when no unit file matches)
    _, units = host.run("systemctl", "list-unit-files", "--no-legend", "backend-chat*")
    assert "backend-chat" not in units
    assert host.run("getent", "passwd", LAYOUT.app_user)[0] == 2
    assert host.run("getent", "group", LAYOUT.app_user)[0] == 2
    for path in (LAYOUT.config_dir, LAYOUT.app_base_dir, LAYOUT.sysctl_file,
                 LAYOUT.backup_script, LAYOUT.nginx_site_file, "/var/backups/backend-chat",
                 LAYOUT.package_baseline, LAYOUT.app_state_dir, LAYOUT.drift_code_dir,
                 LAYOUT.drift_status, LAYOUT.upgrade_dir):
        assert not host.exists(path), path
    tables = host.out("nft", "list", "tables")
    assert "backend_chat" not in tables
    for package in INSTALLED_BY_SELFHOST:
        assert host.package_status(package) != "installed", package
    rc, listening = host.run("ss", "-Hltn")
    proxy = host.deployment.plan.proxy_port
    assert rc == 0
    assert f":{proxy} " not in listening
    assert ":443 " not in listening

    # The host's own software is as it was.
    assert host.package_status(BYSTANDER_PACKAGE) == "installed"
    assert host.package_status("nftables") == "installed"
    assert f"table inet {BYSTANDER_TABLE}" in tables
    assert "chain keep" in host.out("nft", "list", "table", "inet", BYSTANDER_TABLE)

    # The subprocessor archive's last entry says the deployment is retired.
    last = json.loads(archive_path(host.profile, customer).read_text().splitlines()[-1])
    assert last["content"]["kind"] == "retired"
    assert last["seq"] == report["archive_entry"]


def test_a_second_destroy_is_a_no_op(host: Host) -> None:
    code, output = _cli("destroy", str(host.profile), "--sandbox", host.box.name,
                        "--yes-i-really-mean-it", "--sign-key", str(host.sign_key))
    assert code == 0, output
    assert "nothing to destroy" in output
    assert "was destroyed on" in output
    assert host.package_status(BYSTANDER_PACKAGE) == "installed"
