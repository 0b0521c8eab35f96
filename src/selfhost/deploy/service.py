"""``deploy()``: the one function behind ``selfhost deploy``.

Profile -> its hosts (:mod:`selfhost.targets`) -> Plan -> secrets and PKI ->
inventory, extra vars, secret environment -> ansible-runner -> record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfhost import __version__, inputs, pki
from selfhost.deploy import history, prune, record
from selfhost.deploy.delta import SubprocessorDelta, compare
from selfhost.deploy.engine import Engine, choose
from selfhost.deploy.events import HostStats
from selfhost.deploy.progress import Reporter
from selfhost.deploy.redact import Redactor
from selfhost.deploy.runner import RunOutcome, RunRequest, run_shown
from selfhost.deploy.secrets_env import build_env
from selfhost.drift import bundle as drift_bundle
from selfhost.errors import Aborted, InvalidInput, PrerequisiteMissing
from selfhost.paths import ANSIBLE_DIR
from selfhost.plan import Plan, plan
from selfhost.profile_checks import resolve, verified_release
from selfhost.profile_io import load_profile
from selfhost.secrets import Secrets, load_secrets, passphrase_from_env
from selfhost.subprocessors import notices
from selfhost.subprocessors.document import build_document
from selfhost.subprocessors.render import today
from selfhost.targets import Target, resolve_target

PLAYBOOK = "site.yml"
DEFAULT_TIMEOUT = 3600

#: ``confirm(question)``: True to go on; None when nobody can be asked
Confirm = Callable[[str], bool]
#: builds the progress display once the secrets (to hide) are known
ReporterFactory = Callable[[Redactor], Reporter]


@dataclass(frozen=True)
class HostRunOptions:
    """Where a command that runs a playbook works, how, and how it opens the secrets:
    what deploy, rotate and rotate-ca take beside their own options."""
    inventory: Path | None = None
    sandbox: str | None = None
    yes: bool = False
    engine: str | None = None
    timeout: int = DEFAULT_TIMEOUT
    passphrase: str | None = field(default=None, repr=False)
    key_file: Path | None = None


@dataclass(frozen=True)
class DeployOptions(HostRunOptions):
    check: bool = False
    limit: str | None = None
    #: keep the runner's artifacts here (only after a scan finds no secret in them)
    keep_artifacts: Path | None = None
    #: deploy before the subprocessor change's notice is effective, for this reason
    override_notice: str | None = None
    #: Ed25519 key that signs the override's archive entry
    sign_key: Path | None = None
    #: after the deploy, remove the components the profile no longer uses
    prune: bool = False


@dataclass
class DeployResult:
    profile_path: Path
    plan: Plan
    check: bool
    engine: Engine
    stats: dict[str, HostStats]
    seconds: float
    delta: SubprocessorDelta
    #: the record written beside the profile (None for a dry run or a --limit run)
    record_path: Path | None
    #: components and hosts of the last deployment that this Plan no longer uses
    left_behind: list[str] = field(default_factory=list)
    #: the notice gate as it was before the run
    gate: notices.Gate | None = None
    #: archive entry of the recorded --override-notice, if one was needed
    override_entry: int | None = None
    #: --prune: host -> the components removed
    pruned: dict[str, list[str]] = field(default_factory=dict)
    #: --prune: host -> the archives of removed data, on that host
    prune_archives: dict[str, list[str]] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        return sum(s.changed for s in self.stats.values())


def _read_text(profile_path: Path, value: str | None, what: str) -> str:
    if not value:
        return ""
    target = resolve(profile_path, value)
    try:
        return inputs.read_text(target, inputs.PEM_LIMIT)
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{profile_path}: {what}: cannot read {target} "
                           f"({inputs.reason(exc)})") from None


def _pki(profile_path: Path, target: Target, values: dict[str, str]) -> pki.PkiMaterial:
    the_plan = target.plan
    state = record.state_dir(profile_path, the_plan.customer.id)
    # During `certs rotate-ca` the secrets hold the other CA's key as well.
    other = values.get("ca_key_next") or values.get("ca_key_previous")
    material = pki.issue(the_plan, values.get("ca_key"), state, other)
    if the_plan.tls.mode == "provided":
        tls = target.profile.tls
        material = material.with_provided(
            [h.name for h in the_plan.hosts_with("app")],
            _read_text(profile_path, tls.cert_file, "tls.cert_file"),
            _read_text(profile_path, tls.key_file, "tls.key_file"))
    return material


def _extravars(profile_path: Path, target: Target, material: pki.PkiMaterial
               ) -> dict[str, Any]:
    release = target.profile.app.release
    # checked when the profile was loaded; the role pins the tarball to this digest
    # and takes the manifest from here, so the host runs exactly what was checked
    checked = verified_release(target.profile, profile_path)
    out: dict[str, Any] = {
        "selfhost_plan": target.plan.model_dump(mode="json"),
        "selfhost_drift": drift_bundle.extravars(target.plan),
        "selfhost_pki": material.as_extravars(),
        "selfhost_tool_version": __version__,
        "selfhost_acme_ca": _read_text(profile_path, target.profile.tls.acme.ca_file,
                                       "tls.acme.ca_file"),
        "selfhost_app_release": str(resolve(profile_path, release)) if release else "",
        "selfhost_app_release_sha256": checked.sha256 if checked else "",
        "selfhost_app_release_manifest": (checked.manifest.model_dump(mode="json")
                                          if checked else {}),
    }
    # the record role writes the release that runs; an upgrade passes its own
    running = record.release_of(out["selfhost_app_release_manifest"])
    out["selfhost_record_release"] = running.model_dump() if running else {}
    return out


def _redactor(values: Mapping[str, str], material: pki.PkiMaterial,
              passphrase: str | None) -> Redactor:
    known = dict(values)
    known.update({f"tls_key_{h}": k for h, k in material.host_keys.items()})
    if passphrase:
        known["passphrase"] = passphrase
    return Redactor(known)


def _confirm_delta(delta: SubprocessorDelta, options: DeployOptions,
                   confirm: Confirm | None) -> None:
    if options.check or options.yes or not delta.changes_list:
        return
    question = ("This deployment changes the subprocessor list:\n  "
                + "\n  ".join(delta.lines()) + "\nDeploy and change it?")
    if confirm is None:
        raise Aborted("this deployment changes the subprocessor list ("
                      + "; ".join(delta.lines()) + ") and there is no terminal to confirm "
                      "it: review it with `selfhost deploy --check`, then pass --yes")
    if not confirm(question):
        raise Aborted("deployment cancelled: the subprocessor list change was not confirmed")


def playbook_path(name: str = PLAYBOOK) -> Path:
    path = ANSIBLE_DIR / name
    if not path.is_file():
        raise PrerequisiteMissing(f"the playbook {path} is missing (reinstall selfhost)")
    return path


@dataclass(frozen=True)
class Prepared:
    """Everything a run needs, computed before anything touches a host."""

    target: Target
    playbook: Path
    extravars: dict[str, Any]
    secret_env: dict[str, str] = field(repr=False)
    redactor: Redactor = field(repr=False)


def prepare(profile_path: Path, options: DeployOptions, *,
            values: Mapping[str, str] | None = None,
            also_hide: Mapping[str, str] | None = None) -> Prepared:
    """Profile, secrets and PKI -> inventory, extra vars and the secret environment.

    ``values`` replaces the secrets file's contents (a rotation's new secrets);
    ``also_hide`` are further values the output and artifacts must never show.
    """
    playbook = playbook_path()
    target = resolve_target(load_profile(profile_path), inventory_file=options.inventory,
                            sandbox=options.sandbox, source=profile_path)
    if values is None:
        secrets: Secrets = load_secrets(profile_path, options.passphrase, options.key_file)
        values = {name: secrets[name] for name in secrets}
    material = _pki(profile_path, target, dict(values))
    env = build_env(target.plan, values, material.host_keys, profile_path=profile_path,
                    key_env=material.secret_env())
    hidden = {**{f"hidden_{k}": v for k, v in (also_hide or {}).items()}, **values}
    redactor = _redactor(hidden, material, options.passphrase or passphrase_from_env())
    return Prepared(target=target, playbook=playbook,
                    extravars=_extravars(profile_path, target, material), secret_env=env,
                    redactor=redactor)


def deploy(profile_path: Path, options: DeployOptions, *,
           reporter: ReporterFactory | None = None, confirm: Confirm | None = None,
           say: Callable[[str], None] | None = None) -> DeployResult:
    """Deploy (or, with ``check``, dry-run) the profile at ``profile_path``.

    Raises :class:`~selfhost.errors.DeployFailed` naming host, task and message when
    a task fails or a host is unreachable, :class:`~selfhost.errors.Aborted` when a
    change of the subprocessor list is not confirmed.
    """
    engine = choose(options.engine)
    gate = _notice_gate(profile_path, options, say)
    prepared = prepare(profile_path, options)
    target, redactor = prepared.target, prepared.redactor

    customer = target.plan.customer.id
    rec_path = record.record_path(profile_path, customer)
    list_path = record.list_path(profile_path, customer)
    on = today()
    delta = compare(record.read_list(list_path), target.plan, on)
    previous = record.read(rec_path)
    leftovers = record.left_behind(previous, target.plan)
    to_prune = record.dropped(previous, target.plan) if options.prune else {}
    if say is not None:
        if options.check or delta.changes_list:
            for line in delta.lines():
                say(line)
        for line in leftovers:
            say(f"note: {line}")
    _confirm_delta(delta, options, confirm)
    prune.confirm(to_prune, target.plan, check=options.check or options.limit is not None,
                  yes=options.yes, confirm=confirm)

    request = RunRequest(playbook=prepared.playbook, inventory=target.inventory,
                         extravars=prepared.extravars,
                         secret_env=prepared.secret_env, engine=engine, check=options.check,
                         limit=options.limit, timeout=options.timeout,
                         keep_artifacts=options.keep_artifacts)
    def remember(outcome: RunOutcome) -> None:
        history.append(history.history_path(record.state_dir(profile_path, customer)),
                       history.entry(outcome, check=options.check, limit=options.limit,
                                     tool_version=__version__), redactor)

    outcome = run_shown(request, redactor, reporter, after=remember)

    written = None
    override = None
    if not options.check and gate.blocked and options.override_notice is not None:
        assert options.sign_key is not None  # checked by notices.check_override
        override = notices.record_override(gate, options.override_notice, options.sign_key)
        if say is not None:
            say(f"notice override recorded in {gate.archive} as entry {override}")
    if not options.check and options.limit is None:
        written = rec_path
        running = record.release_of(prepared.extravars["selfhost_app_release_manifest"])
        record.write(rec_path, record.from_plan(target.plan, __version__, release=running))
        record.write_list(list_path, build_document(target.plan, on=on))
    pruned = prune.run(target, to_prune, engine=engine, timeout=options.timeout,
                       reporter=reporter, say=say) if written is not None else {}
    return DeployResult(profile_path=profile_path, plan=target.plan, check=options.check,
                        engine=engine, stats=outcome.stats, seconds=outcome.seconds,
                        delta=delta, record_path=written, left_behind=leftovers,
                        gate=gate, override_entry=override,
                        pruned=to_prune if written is not None else {}, prune_archives=pruned)


def _notice_gate(profile_path: Path, options: DeployOptions,
                 say: Callable[[str], None] | None) -> notices.Gate:
    """The notice gate, from the profile alone: it refuses before any host, sandbox
    or secret is touched."""
    the_plan = plan(load_profile(profile_path))
    deployed = record.read_list(record.list_path(profile_path, the_plan.customer.id))
    gate = notices.evaluate(profile_path, the_plan, deployed, today())
    if say is not None and (options.check or gate.needs_notice):
        for line in gate.lines():
            say(line)
    if not options.check:
        notices.check_override(gate, options.override_notice, options.sign_key)
    return gate
