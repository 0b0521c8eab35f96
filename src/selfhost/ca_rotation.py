"""``rotate_ca()``: replace a deployment's internal CA without a moment in which a
client or server distrusts the other side.

Three phases, each one run of site.yml over every host (the app keeps serving):

1. ``add``: a new CA key is generated and its CA certificate issued; every host's
   trusted CA file (``ca.crt``) becomes a bundle of the old and the new CA (the
   app's clients read it at each connection; Redis with TLS has a copy and
   restarts). The server certificates stay.
2. ``switch``: every server certificate (and its key, derived from the CA key)
   is reissued by the new CA and installed; the bundle stays, so clients that
   still hold an old certificate's connection, and those that check against the
   bundle, trust both.
3. ``finish``: the bundles hold the new CA only, and the old CA key leaves the
   secrets file.

PostgreSQL and nginx only present certificates (they check no client's), so
the bundle matters to the clients: the app, the checks, Redis's copy.

Where a rotation stands is kept in the secrets file itself, each phase's change
written only after every host accepted it: after ``add`` it holds the new key as
``ca_key_next``; after ``switch`` the new key is ``ca_key`` and the old one
``ca_key_previous``; after ``finish`` only ``ca_key``. Before ``add`` the new
key waits, sealed with the secrets file's key, in ``PROFILE.secrets.rotating-ca``.
``selfhost deploy`` reads the same names, so a deploy in the middle keeps the
bundle; ``selfhost certs rotate-ca`` run again resumes with the next phase.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes

from selfhost import pki, secrets
from selfhost.atomic import write_atomic
from selfhost.deploy import record
from selfhost.deploy.engine import Engine, choose
from selfhost.deploy.events import HostStats
from selfhost.deploy.runner import RunRequest, run_shown
from selfhost.deploy.service import (
    PLAYBOOK,
    Confirm,
    DeployOptions,
    HostRunOptions,
    ReporterFactory,
    playbook_path,
    prepare,
)
from selfhost.errors import Aborted, InvalidInput, SelfhostError
from selfhost.plan import Plan, plan
from selfhost.profile_io import load_profile

NEXT = "ca_key_next"
PREVIOUS = "ca_key_previous"
PHASES = ("add", "switch", "finish")
#: what each phase does on the hosts, for the confirmation
EFFECTS = {
    "add": "every host trusts the old and the new CA (ca.crt becomes a bundle of both, "
           "which the app reads at each connection; a TLS cache restarts with its copy)",
    "switch": "every server certificate is reissued by the new CA and installed",
    "finish": "ca.crt holds the new CA only; the old CA key leaves the secrets file",
}

Say = Callable[[str], None]


@dataclass(frozen=True)
class CaRotateOptions(HostRunOptions):
    #: stop after this phase (tests look at the overlap); None: run to the end
    stop_after: str | None = None


@dataclass
class CaRotateResult:
    profile_path: Path
    #: the phases run now, in order
    phases: list[str]
    resumed: bool
    engine: Engine
    #: each phase's host stats
    steps: dict[str, dict[str, HostStats]]
    #: SHA-256 fingerprints (hex) of the CA before and after
    old_ca: str
    new_ca: str


def pending_path(profile_path: Path) -> Path:
    """The new CA key before the hosts trust it (``acme.secrets.rotating-ca``)."""
    stored = secrets.secrets_path(profile_path)
    return stored.with_name(stored.name + ".rotating-ca")


def _credentials(options: CaRotateOptions) -> tuple[str | None, Path | None]:
    return secrets.credentials(options.passphrase, options.key_file)


def _seal(path: Path, values: Mapping[str, str], options: CaRotateOptions) -> None:
    passphrase, key_file = _credentials(options)
    write_atomic(path, secrets.seal(values, passphrase=passphrase, key_file=key_file), 0o600)


def _read_pending(profile_path: Path, options: CaRotateOptions) -> dict[str, str] | None:
    return secrets.read_pending(pending_path(profile_path), "the pending CA rotation file",
                                passphrase=options.passphrase, key_file=options.key_file)


def where(values: Mapping[str, str]) -> str:
    """The first phase still to run, from the names in the secrets file."""
    if NEXT in values:
        return "switch"
    if PREVIOUS in values:
        return "finish"
    return "add"


def after(phase: str, values: Mapping[str, str]) -> dict[str, str]:
    """The secrets once ``phase`` is done on every host (``values``: those before it)."""
    out = dict(values)
    if phase == "switch":
        out["ca_key"], out[PREVIOUS] = out.pop(NEXT), values["ca_key"]
    elif phase == "finish":
        out.pop(PREVIOUS, None)
    return out


def describe(hosts: list[str], phases: list[str], resumed: bool) -> list[str]:
    lines = [f"{'Resume the replacement of' if resumed else 'Replace'} the internal CA on "
             f"{', '.join(hosts)}:"]
    lines += [f"  {phase}: {EFFECTS[phase]}" for phase in phases]
    lines.append("Each phase's change is stored in the secrets file once every host has it; "
                 "run this command again to resume an interrupted rotation.")
    return lines


def _unfinished(profile_path: Path, phase: str) -> str:
    return (f"\nThe CA rotation stopped in its {phase} phase; the hosts trust the CAs the "
            f"secrets file names. Run `selfhost certs rotate-ca {profile_path}` again to "
            "resume it.")


def _where_to_start(profile_path: Path, options: CaRotateOptions
                    ) -> tuple[Plan, dict[str, str], dict[str, str] | None, list[str]]:
    """The Plan, the stored secrets, a pending new key and the phases to run."""
    if options.stop_after is not None and options.stop_after not in PHASES:
        raise InvalidInput(f"rotate-ca: --stop-after {options.stop_after}: choose one of "
                           f"{', '.join(PHASES)}")
    the_plan = plan(load_profile(profile_path))
    if not any(pki.host_names(the_plan).values()):
        raise InvalidInput(f"rotate-ca: {profile_path}: this deployment has no internal CA "
                           "(tls.mode is not self-signed and tls.internal is off)")
    stored = secrets.load_secrets(profile_path, options.passphrase, options.key_file)
    values = {name: stored[name] for name in stored}
    if "ca_key" not in values:
        raise InvalidInput(f"rotate-ca: {secrets.secrets_path(profile_path)} has no ca_key "
                           f"(run `selfhost init --force {profile_path}` to generate it)")
    first = where(values)
    if first != "add":
        # The add phase was stored; a pending file left by a cut after that is stale.
        pending_path(profile_path).unlink(missing_ok=True)
    pending = _read_pending(profile_path, options)
    phases = list(PHASES[PHASES.index(first):])
    if options.stop_after is not None:
        phases = phases[:phases.index(options.stop_after) + 1] if options.stop_after in phases \
            else []
    return the_plan, values, pending, phases


def rotate_ca(profile_path: Path, options: CaRotateOptions, *,
              reporter: ReporterFactory | None = None, confirm: Confirm | None = None,
              say: Say | None = None) -> CaRotateResult:
    """Replace the internal CA of the profile at ``profile_path`` (see the module).

    Raises :class:`InvalidInput` when the deployment has no internal CA,
    :class:`Aborted` when not confirmed, and a run's error (exit 4) naming the
    phase when a host run fails.
    """
    the_plan, values, pending, phases = _where_to_start(profile_path, options)
    resumed = pending is not None or phases[:1] != ["add"]
    if say is not None:
        for line in describe([h.name for h in the_plan.hosts], phases, resumed):
            say(line)
    if not options.yes:
        if confirm is None:
            raise Aborted("rotate-ca: there is no terminal to confirm the CA rotation: "
                          "pass --yes")
        if not confirm("Replace the internal CA now?"):
            raise Aborted("CA rotation cancelled: nothing was changed")

    state = record.state_dir(profile_path, the_plan.customer.id)
    old_ca = _fingerprint(values.get(PREVIOUS, values["ca_key"]), state)
    engine = choose(options.engine)
    stats: dict[str, dict[str, HostStats]] = {}
    for phase in phases:
        if phase == "add":
            if pending is None:
                pending = {**values, NEXT: secrets.generate("ca_key")}
                _seal(pending_path(profile_path), pending, options)
            goal = pending
        else:
            goal = after(phase, values)
        if say is not None:
            say(f"rotate-ca: {phase} phase ({PHASES.index(phase) + 1}/{len(PHASES)}): "
                f"{EFFECTS[phase]}")
        try:
            stats[phase] = _run(profile_path, options, engine, goal=goal, before=values,
                                reporter=reporter)
        except SelfhostError as exc:
            raise SelfhostError(exc.message + _unfinished(profile_path, phase),
                                exit_code=exc.exit_code) from None
        except KeyboardInterrupt:
            if say is not None:
                say(_unfinished(profile_path, phase).strip())
            raise
        _seal(secrets.secrets_path(profile_path), goal, options)
        if phase == "add":
            pending_path(profile_path).unlink(missing_ok=True)
        if phase == "finish":
            pki.forget_other_cas(state)
        values = goal
    new_key = values.get(NEXT, values["ca_key"])
    result = CaRotateResult(
        profile_path=profile_path, phases=phases, resumed=resumed, engine=engine, steps=stats,
        old_ca=old_ca, new_ca=_fingerprint(new_key, state))
    if say is not None:
        say("rotate-ca: the internal CA is replaced; the old CA key is in no file"
            if "finish" in phases else
            f"rotate-ca: stopped after the {phases[-1] if phases else 'no'} phase; run "
            f"`selfhost certs rotate-ca {profile_path}` again to continue")
    return result


def _fingerprint(key_pem: str, state: Path) -> str:
    """The SHA-256 fingerprint (hex) of the key's stored CA certificate ("" if none)."""
    cert = pki.stored_ca(key_pem, state)
    return cert.fingerprint(hashes.SHA256()).hex() if cert is not None else ""


def _run(profile_path: Path, options: CaRotateOptions, engine: Engine, *,
         goal: Mapping[str, str], before: Mapping[str, str],
         reporter: ReporterFactory | None) -> dict[str, HostStats]:
    deploy_options = DeployOptions(inventory=options.inventory, sandbox=options.sandbox,
                                   engine=options.engine, passphrase=options.passphrase,
                                   key_file=options.key_file, timeout=options.timeout)
    prepared = prepare(profile_path, deploy_options, values=goal,
                       also_hide={k: v for k, v in before.items() if k not in goal})
    request = RunRequest(playbook=playbook_path(PLAYBOOK), inventory=prepared.target.inventory,
                         extravars=prepared.extravars, secret_env=prepared.secret_env,
                         engine=engine, timeout=options.timeout)
    return run_shown(request, prepared.redactor, reporter).stats
