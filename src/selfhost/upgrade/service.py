"""The upgrade and the rollback, driven from the controller one playbook action at a time.

Preflight (nothing changes): the release's signature against the profile's keys, the
subprocessors left as deployed (:mod:`selfhost.upgrade.parties`), the running release
of every app host, the upgrade path, free space, and ``verify`` green.
Then: stage on every app host, the pre-upgrade dump (state file on the database host),
the migrations once, the switch host by host gated by the release's health endpoint,
``verify`` again; every host's deployment record and the controller's then name the
release that runs. Any failure after staging rolls back on its own: the database restored
from the dump when a migration had started, every app host back on the running release.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfhost import __version__, release
from selfhost.deploy import record
from selfhost.deploy.engine import choose
from selfhost.deploy.events import Event
from selfhost.deploy.runner import RunRequest, raise_for, run_playbook
from selfhost.deploy.service import DeployOptions, Prepared, prepare
from selfhost.errors import Aborted, DeployFailed, InvalidInput, PrerequisiteMissing
from selfhost.paths import ANSIBLE_DIR
from selfhost.plan import plan
from selfhost.profile_checks import TRUST_HINT, resolve
from selfhost.profile_io import load_profile
from selfhost.record_schema import RecordRelease
from selfhost.subprocessors.render import today
from selfhost.upgrade import parties
from selfhost.upgrade.running import HostFacts, running_release

PLAYBOOK = "upgrade.yml"
#: beside the payload unpacked twice (tarball member and files), kept free on app hosts
SPACE_MARGIN = 64 * 1024**2

#: ``step(text)``: one line of progress
Step = Callable[[str], None]
Confirm = Callable[[str], bool]


@dataclass(frozen=True)
class UpgradeOptions:
    release: Path
    inventory: Path | None = None
    sandbox: str | None = None
    check: bool = False
    skip_verify: bool = False
    timeout: int = 3600
    passphrase: str | None = field(default=None, repr=False)
    key_file: Path | None = None


@dataclass
class UpgradeResult:
    from_version: str
    to_version: str
    check: bool
    #: what the upgrade does (or, with --check, would do), in order
    steps: list[str]
    migrations: list[str]
    resumed: bool = False
    #: the subprocessors the profile changes against the recorded list, one line
    #: each, or "no subprocessor change" (a real upgrade refuses a change)
    subprocessors: list[str] = field(default_factory=list)


@dataclass
class _Run:
    """One upgrade's controller-side context: the prepared deployment and the release."""

    profile_path: Path
    prepared: Prepared
    checked: release.VerifiedRelease | None
    timeout: int
    step: Step
    inventory: Path | None = None
    sandbox: str | None = None
    facts: dict[str, HostFacts] = field(default_factory=dict)

    def base_vars(self) -> dict[str, Any]:
        out = dict(self.prepared.extravars)
        if self.checked is not None:
            out.update(selfhost_app_release=str(self.checked.path),
                       selfhost_app_release_sha256=self.checked.sha256,
                       selfhost_app_release_manifest=self.checked.manifest.model_dump(
                           mode="json"))
        return out

    def play(self, action: str, **extra: Any) -> None:
        variables = {**self.base_vars(), "selfhost_upgrade_action": action,
                     "selfhost_upgrade_state": {}, "selfhost_upgrade_restore": False,
                     "selfhost_upgrade_to_release": "", "selfhost_upgrade_report": "",
                     "selfhost_upgrade_health": {"path": "/healthz", "timeout": 60}, **extra}
        request = RunRequest(playbook=_playbook(), inventory=self.prepared.target.inventory,
                             extravars=variables, secret_env=self.prepared.secret_env,
                             engine=choose(None), timeout=self.timeout)

        def quiet(_event: Event) -> None:
            pass

        outcome = run_playbook(request, self.prepared.redactor, quiet)
        raise_for(outcome, self.timeout)

    def gather(self) -> dict[str, HostFacts]:
        with tempfile.TemporaryDirectory(prefix="selfhost-upgrade-") as report:
            self.play("preflight", selfhost_upgrade_report=report)
            facts = {}
            for path in sorted(Path(report).glob("*.json")):
                raw = json.loads(path.read_text())
                facts[path.stem] = HostFacts(
                    name=path.stem, app=bool(raw["app"]), database=bool(raw["database"]),
                    current=str(raw["current"]), previous=str(raw["previous"]),
                    free_bytes=int(raw["free_bytes"]), database_bytes=int(raw["database_bytes"]),
                    state=dict(raw["state"] or {}),
                    recorded=RecordRelease.model_validate(raw["recorded"])
                    if raw.get("recorded") else None)
        self.facts = facts
        return facts

    @property
    def app_hosts(self) -> list[HostFacts]:
        return [f for f in self.facts.values() if f.app]

    @property
    def database_host(self) -> HostFacts | None:
        return next((f for f in self.facts.values() if f.database), None)

    def release(self, version: str) -> RecordRelease:
        """``version`` as a release to record: under the name the hosts' records give
        (one product's versions share it), else the new release's manifest name."""
        named = next((f.recorded.name for f in self.facts.values() if f.recorded), None)
        if named is None and self.checked is not None:
            named = self.checked.manifest.name
        return RecordRelease(name=named or record.UNNAMED_RELEASE, version=version)

    def write_records(self, running: RecordRelease) -> None:
        """Every host's deployment record and the controller's name ``running``; a host
        whose record says so already is left as it is."""
        self.play("record", selfhost_record_release=running.model_dump())
        the_plan = self.prepared.target.plan
        path = record.record_path(self.profile_path, the_plan.customer.id)
        record.write(path, record.from_plan(the_plan, __version__, release=running))


def _playbook() -> Path:
    path = ANSIBLE_DIR / PLAYBOOK
    if not path.is_file():
        raise PrerequisiteMissing(f"the playbook {path} is missing (reinstall selfhost)")
    return path


def _start(profile_path: Path, options: UpgradeOptions | RollbackOptions,
           release_file: Path | None, step: Step, *, check: bool = False
           ) -> tuple[_Run, parties.PartyChange]:
    # the release and the subprocessors are checked before any host, sandbox or secret
    # is touched
    profile = load_profile(profile_path)
    checked = None
    if release_file is not None:
        if not profile.app.release_keys:
            raise InvalidInput(f"{profile_path}: app.release_keys: an upgrade installs only "
                               "a release signed by a key the profile trusts (add "
                               "app.release_keys: [vendor-release.pub])")
        step(f"checking the signature of {release_file}")
        checked = release.verified(release_file, [resolve(profile_path, k)
                                                  for k in profile.app.release_keys],
                                   trust_hint=TRUST_HINT)
    step("comparing the profile's subprocessors with the list recorded for the customer")
    change = parties.of_profile(profile_path, plan(profile), today())
    if not check:
        parties.refuse_changed(change)
    prepared = prepare(profile_path, DeployOptions(
        inventory=options.inventory, sandbox=options.sandbox,
        passphrase=options.passphrase, key_file=options.key_file))
    if prepared.target.plan.hosts_with("postgresql") == []:
        raise PrerequisiteMissing("an upgrade needs the deployment's own PostgreSQL host "
                                  "(its pre-upgrade dump is taken there)")
    return _Run(profile_path=profile_path, prepared=prepared, checked=checked,
                timeout=options.timeout, step=step, inventory=options.inventory,
                sandbox=options.sandbox), change


def _preflight(run: _Run, options: UpgradeOptions) -> tuple[str, dict[str, Any], list[str]]:
    assert run.checked is not None
    manifest = run.checked.manifest
    run.step("reading the running release, free space and the last upgrade on the hosts")
    run.gather()
    running, unfinished = running_release(run.app_hosts, run.database_host,
                                          manifest.version)
    if not unfinished and running == manifest.version:
        raise InvalidInput(f"{manifest.name} {manifest.version} already runs on every app "
                           "host: nothing to upgrade")
    refusal = release.upgrade_refusal(manifest, running)
    if refusal:
        raise InvalidInput(f"{options.release}: {refusal}")
    need = manifest.payload.size * 2 + run.checked.path.stat().st_size + SPACE_MARGIN
    short = [f"{h.name} has {h.free_bytes // 1024**2} MiB free, the release needs "
             f"{need // 1024**2} MiB" for h in run.app_hosts if h.free_bytes < need]
    db = run.database_host
    if (db is not None and manifest.migrations and not unfinished
            and db.free_bytes < db.database_bytes + SPACE_MARGIN):
        short.append(f"{db.name} has {db.free_bytes // 1024**2} MiB free, the "
                     f"pre-upgrade dump needs about {db.database_bytes // 1024**2} MiB")
    if short:
        raise PrerequisiteMissing("not enough disk space: " + "; ".join(short))
    if not options.skip_verify and not unfinished:
        run.step("verify: the deployment as it runs now")
        _verify_green(run, "before the upgrade")
    plan_steps = [f"stage {manifest.name} {manifest.version} on "
                  + ", ".join(h.name for h in run.app_hosts)]
    if manifest.migrations:
        plan_steps.append(f"dump the database on {db.name if db else '?'} (pre-upgrade backup)"
                          if not unfinished else "keep the pre-upgrade dump of the first try")
        done = set(unfinished.get("migrations_done", []))
        todo = [m.id for m in manifest.migrations if m.id not in done]
        others = [h.name for h in run.app_hosts[1:]]
        plan_steps.append(("run the migrations " + ", ".join(todo)
                           + (f" on {run.app_hosts[0].name}, with {', '.join(others)} "
                              "drained" if others else "")) if todo
                          else "no migration left to run")
    # the customer's load balancer sees a drained host on /readyz (README, Upgrades)
    drain = (f", drained for {run.prepared.target.plan.app.drain_seconds} s before"
             if len(run.app_hosts) > 1 else "")
    plan_steps += [f"switch {h.name} from {h.current} to {manifest.version}{drain}, gated "
                   f"by {manifest.health.path}" for h in run.app_hosts]
    if not options.skip_verify:
        plan_steps.append("verify the deployment on the new release")
    return running, unfinished, plan_steps


def _verify_green(run: _Run, when: str) -> None:
    from selfhost.verify import verify  # noqa: PLC0415 - testinfra and pytest, on use only

    result = verify(run.profile_path, inventory=run.inventory, sandbox=run.sandbox)
    if not result.ok:
        failed = "; ".join(f"{r.check.host}: {r.check.definition.id} ({r.found})"
                           for r in result.failures[:8])
        raise DeployFailed(f"verify failed {when}: {failed}")


def upgrade(profile_path: Path, options: UpgradeOptions, *,
            step: Step | None = None) -> UpgradeResult:
    """Upgrade the deployment of ``profile_path`` to ``options.release``.

    Raises :class:`InvalidInput` (nothing changed) for a release or path that is refused,
    :class:`DeployFailed` after an automatic rollback, naming what failed and what was
    rolled back."""
    say = step or (lambda _text: None)
    run, change = _start(profile_path, options, options.release, say, check=options.check)
    assert run.checked is not None
    manifest = run.checked.manifest
    running, unfinished, plan_steps = _preflight(run, options)
    result = UpgradeResult(from_version=running, to_version=manifest.version,
                           check=options.check, steps=plan_steps,
                           migrations=[m.id for m in manifest.migrations],
                           resumed=bool(unfinished), subprocessors=change.summary())
    if options.check:
        return result
    state: dict[str, Any] = dict(unfinished) or {
        "from": running, "to": manifest.version, "migrations_done": [], "finished": False,
        "migrating": False}
    health = manifest.health.model_dump(mode="json")
    phase = "stage"
    try:
        say(f"staging {manifest.version} beside {running} on every app host")
        run.play("stage")
        if manifest.migrations:
            # from here on a rollback restores the dump: a migration may have begun
            state["migrating"] = True
            if not unfinished:
                say("pre-upgrade backup: dumping the database")
                run.play("backup", selfhost_upgrade_state=state)
                state["dump"] = _dump_path(run, manifest.version)
            phase = "migrate"
            say("running the migrations " + ", ".join(result.migrations))
            run.play("migrate", selfhost_upgrade_state=state)
            state["migrations_done"] = result.migrations
        phase = "switch"
        say(f"switching the app hosts to {manifest.version}, one at a time")
        run.play("switch", selfhost_upgrade_to_release=manifest.version,
                 selfhost_upgrade_health=health)
        # the records follow the switch: the hosts run the new release from here on
        say(f"recording {manifest.name} {manifest.version} in the deployment records")
        run.write_records(run.release(manifest.version))
        if not options.skip_verify:
            phase = "verify"
            say("verify: the deployment on the new release")
            _verify_green(run, f"after the switch to {manifest.version}")
    except DeployFailed as exc:
        _roll_back(run, state, phase, running, exc)
    state.update(finished=True, migrating=False)
    if manifest.migrations:
        run.play("finish", selfhost_upgrade_state=state)
    say(f"upgraded from {running} to {manifest.version}")
    return result


def _dump_path(run: _Run, version: str) -> str:
    return f"{run.prepared.target.plan.layout.upgrade_dir}/pre-{version}.dump"


def _roll_back(run: _Run, state: dict[str, Any], phase: str, running: str,
               failure: DeployFailed) -> None:
    restore = bool(state.get("migrating")) and bool(state.get("dump"))
    what = [f"every app host back on {running}"]
    if restore:
        what.insert(0, "the database restored from the pre-upgrade dump")
    run.step(f"{phase} failed: rolling back ({'; '.join(what)})")
    try:
        run.play("rollback", selfhost_upgrade_to_release=running,
                 selfhost_upgrade_restore=restore, selfhost_upgrade_state=state,
                 selfhost_upgrade_health={"path": "/healthz", "timeout": 120})
        if state.get("dump"):
            run.play("finish", selfhost_upgrade_state={
                **state, "finished": True, "migrating": False, "rolled_back": True})
        if phase in ("switch", "verify"):
            # the records may already name the new release: back to the running one
            run.write_records(run.release(running))
    except DeployFailed as second:
        raise DeployFailed(f"the upgrade failed at {phase}: {failure.message}\n"
                           f"and the rollback failed too: {second.message}\n"
                           "run `selfhost rollback` once the cause is fixed") from None
    raise DeployFailed(f"the upgrade to {state['to']} failed at {phase}: {failure.message}\n"
                       f"rolled back: {'; '.join(what)}; {running} serves again") from None


@dataclass(frozen=True)
class RollbackOptions:
    inventory: Path | None = None
    sandbox: str | None = None
    yes: bool = False
    timeout: int = 3600
    passphrase: str | None = field(default=None, repr=False)
    key_file: Path | None = None


@dataclass
class RollbackResult:
    from_version: str
    to_version: str
    database_restored: bool


def rollback(profile_path: Path, options: RollbackOptions, *, confirm: Confirm | None = None,
             step: Step | None = None) -> RollbackResult:
    """Back to the release that ran before the last switch, with the database restored
    from the pre-upgrade dump when that upgrade migrated it (after a confirmation)."""
    say = step or (lambda _text: None)
    run, _change = _start(profile_path, options, None, say)
    say("reading the running and the previous release on the hosts")
    run.gather()
    apps = run.app_hosts
    targets = {h.previous for h in apps if h.previous}
    if len(targets) != 1:
        raise InvalidInput("there is no previous release to go back to on every app host "
                           "(a rollback follows an upgrade)")
    target = targets.pop()
    current = sorted({h.current for h in apps})
    db = run.database_host
    state = db.state if db is not None else {}
    migrated = bool(state.get("migrations_done") or state.get("migrating"))
    restore = (bool(state.get("dump")) and migrated and state.get("from") == target
               and not state.get("rolled_back"))
    question = (f"Roll back from {', '.join(current)} to {target}"
                + (", restoring the database from the dump taken before the upgrade (data "
                   "written since is lost)" if restore else "") + "?")
    if not options.yes:
        if confirm is None:
            raise Aborted("a rollback needs a confirmation and there is no terminal to ask: "
                          "pass --yes")
        if not confirm(question):
            raise Aborted("rollback cancelled")
    say(question.rstrip("?").replace("Roll back", "rolling back", 1))
    run.play("rollback", selfhost_upgrade_to_release=target, selfhost_upgrade_restore=restore,
             selfhost_upgrade_state=state,
             selfhost_upgrade_health={"path": "/healthz", "timeout": 120})
    if state:
        run.play("finish", selfhost_upgrade_state={**state, "finished": True,
                                                   "migrating": False, "rolled_back": True})
    run.write_records(run.release(target))
    return RollbackResult(from_version=", ".join(current), to_version=target,
                          database_restored=restore)
