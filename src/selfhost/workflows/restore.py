"""``selfhost restore`` and ``selfhost backup drill``.

Restore: the archive is decrypted and every member checked against the manifest
*first* (another customer, a wrong key, a cut or altered archive are refused
there, with nothing on any host touched); then ``deploy`` onto the hosts, the
app stopped, the database replaced from the dump (``pg_restore --clean`` in one
transaction), the app started, and ``verify``.

Drill: the latest archive restored onto a throwaway sandbox from the profile and
secrets file *inside* the archive (so it proves the archive alone is enough),
``verify``, the canary rows read back; it reports the time and the backup's age and
removes the sandbox.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from selfhost import paths, sandbox
from selfhost.backup import contents, remote
from selfhost.backup.service import backup_key, latest, private_workdir, remove_workdir
from selfhost.deploy.service import DeployOptions, DeployResult, ReporterFactory, deploy
from selfhost.errors import ChecksFailed, DeployFailed
from selfhost.models import all_hosts
from selfhost.plan import plan
from selfhost.profile_io import load_profile
from selfhost.secrets import secrets_path
from selfhost.targets.service import Deployment, SshTarget, resolve
from selfhost.verify import VerifyResult, verify

Say = Callable[[str], None]
#: pg_restore of a large database may run long; ssh itself never waits this long silent
RESTORE_TIMEOUT = 6 * 3600


@dataclass
class RestoreResult:
    backup: Path
    manifest: contents.Manifest
    deployment: DeployResult
    verification: VerifyResult
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)


def _say(say: Say | None) -> Say:
    return say or (lambda _line: None)


def _by_name(deployment: Deployment) -> dict[str, SshTarget]:
    return {t.name: t for t in deployment.targets}


def _restore_database(deployment: Deployment, dump: Path, tell: Say) -> None:
    the_plan = deployment.plan
    targets = _by_name(deployment)
    db_host = targets[the_plan.hosts_with("postgresql")[0].name]
    apps = [targets[h.name] for h in the_plan.hosts_with("app")]
    unit = the_plan.layout.app_unit
    for app in apps:
        tell(f"stop {unit} on {app.name}")
        remote.run(app, ["systemctl", "stop", unit], f"stopping {unit}")
    name = str(the_plan.database.name)
    tell(f"restore database {name} on {db_host.name}")
    # --clean/--if-exists replaces what deploy created; one transaction, so a failure
    # leaves the freshly deployed (empty) database as it was.
    remote.push(db_host, ["runuser", "-u", "postgres", "--", "pg_restore", "--clean",
                          "--if-exists", "--single-transaction", "--exit-on-error",
                          "--dbname", name], dump, f"pg_restore into {name}")
    for app in apps:
        tell(f"start {unit} on {app.name}")
        remote.run(app, ["systemctl", "start", unit], f"starting {unit}")


def restore(profile_path: Path, backup: Path, *, sandbox_name: str | None = None,
            inventory: Path | None = None, passphrase: str | None = None,
            key_file: Path | None = None, reporter: ReporterFactory | None = None,
            say: Say | None = None) -> RestoreResult:
    tell = _say(say)
    started = time.monotonic()
    phases: dict[str, float] = {}
    customer = load_profile(profile_path).customer.id
    key = backup_key(profile_path, passphrase, key_file)
    work = private_workdir()
    try:
        tell(f"check {backup}")
        opened = contents.open_backup(backup, key, secrets_path(profile_path), work, customer)
        phases["check"] = time.monotonic() - started
        if opened.manifest.profile_fingerprint != plan(load_profile(profile_path)
                                                       ).profile_fingerprint:
            tell("note: the profile changed since this backup; the restore deploys the "
                 "profile as it is now")
        mark = time.monotonic()
        tell("deploy onto the new hosts")
        deployed = deploy(profile_path, DeployOptions(sandbox=sandbox_name, inventory=inventory,
                                                      yes=True, passphrase=passphrase,
                                                      key_file=key_file),
                          reporter=reporter, say=tell)
        phases["deploy"] = time.monotonic() - mark
        mark = time.monotonic()
        if opened.manifest.database is not None:
            target = resolve(profile_path, inventory=inventory, sandbox=sandbox_name)
            _restore_database(target, opened.path(contents.DATABASE_DUMP), tell)
        phases["database"] = time.monotonic() - mark
    finally:
        remove_workdir(work)
    mark = time.monotonic()
    tell("verify the restored hosts")
    checked = verify(profile_path, inventory=inventory, sandbox=sandbox_name)
    phases["verify"] = time.monotonic() - mark
    return RestoreResult(backup=backup, manifest=opened.manifest, deployment=deployed,
                         verification=checked, seconds=time.monotonic() - started,
                         phases=phases)


def read_canary(deployment: Deployment) -> list[str]:
    """The canary rows the contract probe reads from the database, via its loopback-only
    ``/canary`` endpoint on the first app host."""
    app = _by_name(deployment)[deployment.plan.hosts_with("app")[0].name]
    url = f"http://127.0.0.1:{deployment.profile.app.port}/canary"
    code = ("import json,sys,urllib.request;"
            f"print(urllib.request.urlopen({url!r},timeout=20).read().decode())")
    text = remote.run(app, ["python3", "-c", code], "reading the canary rows")
    try:
        rows = json.loads(text)["rows"]
        return [str(r["value"]) for r in rows]
    except (ValueError, KeyError, TypeError):
        raise DeployFailed(f"{app.name}: /canary answered something else than its rows"
                           ) from None


@dataclass
class DrillResult:
    backup: Path
    age_seconds: float
    seconds: float
    restore: RestoreResult
    canary: list[str] | None


def drill_sandbox_name(customer_id: str) -> str:
    return "drill-" + hashlib.sha256(customer_id.encode()).hexdigest()[:8]


def _unpack_profile(opened: contents.Opened, into: Path) -> Path:
    """The profile and secrets file of the archive (and its controller state) in ``into``."""
    profile = into / opened.manifest.profile_name
    shutil.copyfile(opened.path(f"{contents.PROFILE_DIR}/profile.yaml"), profile)
    secrets = secrets_path(profile)
    shutil.copyfile(opened.path(f"{contents.PROFILE_DIR}/profile.secrets"), secrets)
    secrets.chmod(0o600)
    # The files the profile names, at the same paths relative to it.
    named = opened.path(contents.PROFILE_FILES_DIR)
    if named.is_dir():
        shutil.copytree(named, into, dirs_exist_ok=True)
    state_src = opened.path(contents.STATE_DIR)
    if state_src.is_dir():
        shutil.copytree(state_src, paths.state_dir(profile, opened.manifest.customer_id))
    return profile


def drill(profile_path: Path, *, backup: Path | None = None, output: Path | None = None,
          release: str = sandbox.DEFAULT_RELEASE, passphrase: str | None = None,
          key_file: Path | None = None, reporter: ReporterFactory | None = None,
          say: Say | None = None) -> DrillResult:
    tell = _say(say)
    started = time.monotonic()
    customer = load_profile(profile_path).customer.id
    chosen = backup or latest(profile_path, customer, output)
    key = backup_key(profile_path, passphrase, key_file)
    work = private_workdir()
    name = drill_sandbox_name(customer)
    try:
        tell(f"check {chosen}")
        opened = contents.open_backup(chosen, key, secrets_path(profile_path),
                                      work / "archive", customer)
        age = (datetime.now(UTC) - datetime.fromisoformat(opened.manifest.created)
               ).total_seconds()
        (work / "profile").mkdir(mode=0o700)
        drill_profile = _unpack_profile(opened, work / "profile")
        hosts = len(all_hosts(load_profile(drill_profile)))
        tell(f"sandbox {name}: {hosts} Debian {release} guest(s)")
        sandbox.up(name, hosts, release, progress=tell)
        try:
            restored = restore(drill_profile, chosen, sandbox_name=name, passphrase=passphrase,
                               key_file=key_file, reporter=reporter, say=tell)
            canary = None
            if restored.verification.ok and opened.manifest.database is not None \
                    and load_profile(drill_profile).app.release is None:
                canary = read_canary(resolve(drill_profile, sandbox=name))
        finally:
            tell(f"remove sandbox {name}")
            sandbox.down(name)
    finally:
        remove_workdir(work)
    result = DrillResult(backup=chosen, age_seconds=age, seconds=time.monotonic() - started,
                         restore=restored, canary=canary)
    if not restored.verification.ok:
        raise ChecksFailed(f"the drill's restore of {chosen} does not pass verify "
                           f"({len(restored.verification.failures)} checks failed)")
    return result
