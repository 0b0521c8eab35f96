"""``rotate()``: new values for a deployment's secrets, switched over on the hosts
while the app keeps serving, stored only once the hosts run on them.

The order on the hosts (each step a run of Ansible):

1. ``overlap`` (site.yml, the stored secrets): when the cache password rotates,
   the cache's ACL user accepts the new password beside the old one.
2. ``switch`` (rotate.yml, the new secrets): the app's environment file gets the
   new values, the database role its new password, and the app restarts.
3. ``settle`` (site.yml, the new secrets): the cache forgets the old password,
   the backup key is replaced, and every host converges as a deploy would.

Before step 1 the new values are sealed, with the secrets file's own key, into
``PROFILE.secrets.rotating`` beside it; after step 3 they are sealed into the
secrets file and that pending file is removed. A run cut anywhere in between
leaves the secrets file as it was and the pending file in place: ``selfhost
rotate`` resumes with the same new values (every step is safe to repeat), and
``selfhost deploy`` returns the hosts to the stored secrets instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from selfhost import secrets
from selfhost.atomic import write_atomic
from selfhost.deploy.engine import Engine, choose
from selfhost.deploy.events import HostStats
from selfhost.deploy.runner import RunRequest, run_shown
from selfhost.deploy.secrets_env import var_name
from selfhost.deploy.service import (
    PLAYBOOK,
    Confirm,
    DeployOptions,
    HostRunOptions,
    Prepared,
    ReporterFactory,
    playbook_path,
    prepare,
)
from selfhost.errors import Aborted, InvalidInput, SelfhostError
from selfhost.plan import Plan, SecretSpec, plan
from selfhost.profile_io import load_profile

SWITCH_PLAYBOOK = "rotate.yml"
#: what rotating each generated secret does on the hosts, for the confirmation
EFFECTS = {
    "database_password": "the database role gets a new password; the app switches to it",
    "cache_password": "the cache accepts old and new password until the app has switched",
    "app_secret_key": "the app restarts with a new secret key (its sessions and signed "
                      "tokens end)",
    "backup_key": "new backups are encrypted with the new key; backups made before stay "
                  "encrypted with the old one",
}
#: secrets this command does not rotate, and what does
ELSEWHERE = {"ca_key": "the internal CA is replaced with `selfhost certs rotate-ca`"}
#: the second cache password the redis role accepts during the switch
OVERLAP_VAR = var_name("cache_password") + "_OVERLAP"

#: ``ask(prompt)``: a value typed without echo; None when nobody can be asked
Ask = Callable[[str], str]
Say = Callable[[str], None]


@dataclass(frozen=True)
class RotateOptions(HostRunOptions):
    names: tuple[str, ...] = ()
    all: bool = False
    #: where supplied (third-party) values are read from (default: os.environ)
    environ: Mapping[str, str] | None = field(default=None, repr=False)
    #: keep each run's artifacts under this directory (after a clean scan)
    keep_artifacts: Path | None = None


@dataclass
class RotateResult:
    profile_path: Path
    rotated: list[str]
    resumed: bool
    engine: Engine
    #: each step's host stats, by step name
    steps: dict[str, dict[str, HostStats]]


def pending_path(profile_path: Path) -> Path:
    """The new values of a rotation that has not finished (``acme.secrets.rotating``)."""
    stored = secrets.secrets_path(profile_path)
    return stored.with_name(stored.name + ".rotating")


def select(the_plan: Plan, names: tuple[str, ...], every: bool) -> list[SecretSpec]:
    """The secrets to rotate: those named, or with ``every`` each generated one."""
    specs = {s.name: s for s in the_plan.secrets_required}
    if every and names:
        raise InvalidInput("rotate: pass either --secret NAME (repeatable) or --all, not both")
    if every:
        return [s for s in specs.values() if s.source == "generated" and s.name in EFFECTS]
    if not names:
        raise InvalidInput("rotate: name the secrets to rotate with --secret NAME, or pass "
                           f"--all for every generated one ({', '.join(_generated(specs))})")
    chosen = []
    for name in dict.fromkeys(names):
        if name in ELSEWHERE:
            raise InvalidInput(f"rotate: --secret {name}: {ELSEWHERE[name]}")
        if name not in specs:
            raise InvalidInput(f"rotate: --secret {name}: this profile's deployment uses no "
                               f"such secret (it uses: {', '.join(sorted(specs))})")
        chosen.append(specs[name])
    return chosen


def _generated(specs: Mapping[str, SecretSpec]) -> list[str]:
    return sorted(n for n, s in specs.items() if s.source == "generated" and n in EFFECTS)


def new_values(chosen: list[SecretSpec], current: Mapping[str, str],
               environ: Mapping[str, str], ask: Ask | None) -> dict[str, str]:
    """A fresh value per generated secret; a supplied one from its environment
    variable or the hidden prompt (never a command-line argument)."""
    values = {}
    for spec in chosen:
        if spec.source == "generated":
            values[spec.name] = secrets.generate(spec.name)
            continue
        variable = secrets.env_name(spec.name)
        value = environ.get(variable, "")
        if not value and ask is not None:
            value = ask(f"New value of {spec.name}")
        if not value:
            raise InvalidInput(f"rotate: {spec.name} is supplied by you: set {variable} to its "
                               "new value (or run on a terminal to be asked for it)")
        if value == current.get(spec.name):
            raise InvalidInput(f"rotate: the new {spec.name} (from {variable} or the prompt) "
                               "is the value stored now: issue a new one at its provider first")
        values[spec.name] = value
    return values


def describe(the_plan: Plan, chosen: list[SecretSpec], resumed: bool) -> list[str]:
    """What the rotation will do, one line per secret, for the confirmation."""
    hosts = ", ".join(h.name for h in the_plan.hosts)
    lines = [f"{'Resume the rotation of' if resumed else 'Rotate'} on {hosts}:"]
    for spec in chosen:
        effect = EFFECTS.get(spec.name, "the app restarts with the value you supplied")
        lines.append(f"  {spec.name}: {effect}")
    lines.append("The app restarts once; the secrets file is updated when every host runs "
                 "on the new values.")
    return lines


def _credentials(options: RotateOptions) -> tuple[str | None, Path | None]:
    return secrets.credentials(options.passphrase, options.key_file)


def _read_pending(profile_path: Path, options: RotateOptions) -> dict[str, str] | None:
    return secrets.read_pending(pending_path(profile_path), "the pending rotation file",
                                passphrase=options.passphrase, key_file=options.key_file)


def _seal(path: Path, values: Mapping[str, str], options: RotateOptions) -> None:
    passphrase, key_file = _credentials(options)
    write_atomic(path, secrets.seal(values, passphrase=passphrase, key_file=key_file), 0o600)


def _unfinished(profile_path: Path, step: str) -> str:
    return (f"\nThe rotation stopped in its {step} step. The secrets file is unchanged; the "
            f"new values wait in {pending_path(profile_path)}. Run `selfhost rotate "
            f"{profile_path}` again to finish it, or `selfhost deploy {profile_path}` to "
            "return the hosts to the stored secrets (then delete that file).")


@dataclass(frozen=True)
class _Step:
    name: str
    prepared: Prepared
    playbook: str
    extra_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    extra_vars: Mapping[str, bool] = field(default_factory=dict)


def _choose(profile_path: Path, the_plan: Plan, options: RotateOptions,
            current: Mapping[str, str], ask: Ask | None
            ) -> tuple[list[SecretSpec], dict[str, str], bool]:
    """The secrets to rotate and their new values: those of an unfinished rotation
    (resumed), else the chosen ones with fresh values."""
    pending = _read_pending(profile_path, options)
    if pending is None:
        chosen = select(the_plan, options.names, options.all)
        if not chosen:
            raise InvalidInput("rotate: this profile's deployment has no generated secret "
                               "to rotate")
        return chosen, new_values(chosen, current, options.environ or os.environ, ask), False
    changed = sorted(n for n, v in pending.items() if current.get(n) != v)
    if options.names and sorted(set(options.names)) != changed:
        raise InvalidInput(f"rotate: {pending_path(profile_path)} holds an unfinished "
                           f"rotation of {', '.join(changed)}: run `selfhost rotate "
                           f"{profile_path}` without --secret to finish it first")
    specs = {s.name: s for s in the_plan.secrets_required}
    return [specs[n] for n in changed if n in specs], {n: pending[n] for n in changed}, True


def _steps(profile_path: Path, options: RotateOptions, chosen: list[SecretSpec],
           current: Mapping[str, str], fresh: Mapping[str, str]) -> list[_Step]:
    """The runs, in order (see the module), each with what it hands over."""
    deploy_options = DeployOptions(inventory=options.inventory, sandbox=options.sandbox,
                                   engine=options.engine, passphrase=options.passphrase,
                                   key_file=options.key_file, timeout=options.timeout)
    new = {**current, **fresh}
    # Each run's output and artifacts are checked for the old and the new values.
    before = prepare(profile_path, deploy_options, values=current, also_hide=fresh)
    after = prepare(profile_path, deploy_options, values=new,
                    also_hide={f"previous_{n}": current[n] for n in fresh if n in current})
    generated = {s.name for s in chosen if s.source == "generated"}
    switch_vars = {"selfhost_rotate_database": "database_password" in generated}
    if "cache_password" not in generated:
        return [_Step("switch", after, SWITCH_PLAYBOOK, extra_vars=switch_vars),
                _Step("settle", after, PLAYBOOK)]
    return [
        _Step("overlap", before, PLAYBOOK, {OVERLAP_VAR: fresh["cache_password"]}),
        # Both passwords again, the other way round: the cache's file stays as it is.
        _Step("switch", after, SWITCH_PLAYBOOK, {OVERLAP_VAR: current["cache_password"]},
              switch_vars),
        _Step("settle", after, PLAYBOOK),
    ]


def rotate(profile_path: Path, options: RotateOptions, *,
           reporter: ReporterFactory | None = None, confirm: Confirm | None = None,
           ask: Ask | None = None, say: Say | None = None) -> RotateResult:
    """Rotate the chosen secrets of the profile at ``profile_path`` (see the module).

    Raises :class:`InvalidInput` for a bad choice of secrets, :class:`Aborted` when
    the rotation is not confirmed, and a run's error (``DeployFailed``...) naming the
    pending file when a host step fails.
    """
    the_plan = plan(load_profile(profile_path))
    stored = secrets.load_secrets(profile_path, options.passphrase, options.key_file)
    current = {name: stored[name] for name in stored}
    chosen, fresh, resumed = _choose(profile_path, the_plan, options, current, ask)
    rotated = [s.name for s in chosen]
    if say is not None:
        for line in describe(the_plan, chosen, resumed):
            say(line)
    if not options.yes:
        if confirm is None:
            raise Aborted("rotate: there is no terminal to confirm the rotation: pass --yes")
        if not confirm("Rotate these secrets now?"):
            raise Aborted("rotation cancelled: nothing was changed")

    new = {**current, **fresh}
    if not resumed:
        _seal(pending_path(profile_path), new, options)
    engine = choose(options.engine)
    stats: dict[str, dict[str, HostStats]] = {}
    for step in _steps(profile_path, options, chosen, current, fresh):
        if say is not None:
            say(f"rotate: {step.name} step ({step.playbook})")
        try:
            stats[step.name] = _run(step, engine, options, reporter)
        except SelfhostError as exc:
            raise SelfhostError(exc.message + _unfinished(profile_path, step.name),
                                exit_code=exc.exit_code) from None
        except KeyboardInterrupt:
            if say is not None:
                say(_unfinished(profile_path, step.name).strip())
            raise
    secrets_file = secrets.secrets_path(profile_path)
    _seal(secrets_file, new, options)
    pending_path(profile_path).unlink(missing_ok=True)
    if say is not None:
        say(f"rotated {', '.join(rotated)}; {secrets_file} holds the new values")
    return RotateResult(profile_path=profile_path, rotated=rotated, resumed=resumed,
                        engine=engine, steps=stats)


def _run(step: _Step, engine: Engine, options: RotateOptions,
         reporter: ReporterFactory | None) -> dict[str, HostStats]:
    keep = options.keep_artifacts / step.name if options.keep_artifacts is not None else None
    prepared = step.prepared
    request = RunRequest(playbook=playbook_path(step.playbook),
                         inventory=prepared.target.inventory,
                         extravars={**prepared.extravars, **step.extra_vars},
                         secret_env={**prepared.secret_env, **step.extra_env}, engine=engine,
                         timeout=options.timeout, keep_artifacts=keep)
    return run_shown(request, prepared.redactor, reporter).stats
