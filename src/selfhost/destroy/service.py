"""``destroy()``: the one function behind ``selfhost destroy``.

The controller's deployment record says what selfhost put on which host; the
profile says how to reach them. Before anything is touched: the record is read,
the archive's signing key is checked, the customer id is confirmed. Then one
teardown run (:mod:`selfhost.deploy.teardown`): the final backup fetched to the
controller, every component removed, then the base system and the Debian
packages selfhost installed. Last, the record is retired beside the profile
(so a second destroy is a no-op) and the subprocessor archive says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from selfhost import __version__
from selfhost.atomic import write_atomic
from selfhost.deploy import record
from selfhost.deploy.engine import Engine, choose
from selfhost.deploy.progress import Reporter
from selfhost.deploy.redact import Redactor
from selfhost.deploy.teardown import Removal, remove
from selfhost.errors import Aborted, InvalidInput
from selfhost.plan import plan
from selfhost.profile_io import load_profile
from selfhost.subprocessors import archive
from selfhost.subprocessors.publishing import retire
from selfhost.targets import resolve_target

DEFAULT_TIMEOUT = 3600
#: beside the profile's record: what ``destroy`` removed, when (its presence makes a
#: second destroy a no-op)
RETIRED_NAME = "destroyed.json"
#: ``<state dir>/final-backups/<UTC stamp>/<host>/<dump>``
BACKUPS_DIR = "final-backups"

#: ``ask(question)`` -> what the person typed; None when nobody can be asked
Ask = Callable[[str], str]


@dataclass(frozen=True)
class DestroyOptions:
    inventory: Path | None = None
    sandbox: str | None = None
    #: take a final backup first (``--no-backup`` turns it off)
    backup: bool = True
    #: ``--yes-i-really-mean-it``
    confirmed: bool = False
    engine: str | None = None
    timeout: int = DEFAULT_TIMEOUT
    #: the key that signs the subprocessor archive's retirement entry
    sign_key: Path | None = None


@dataclass
class DestroyResult:
    customer_id: str
    #: a destroy that found nothing to do, and why
    already: str | None = None
    hosts: list[str] = field(default_factory=list)
    engine: Engine | None = None
    seconds: float = 0.0
    #: host -> the final backup's file on the controller
    backups: dict[str, list[Path]] = field(default_factory=dict)
    backup_dir: Path | None = None
    retired_record: Path | None = None
    archive_entry: int | None = None


def retired_path(profile_path: Path, customer_id: str) -> Path:
    return record.state_dir(profile_path, customer_id) / RETIRED_NAME


def _already(profile_path: Path, customer_id: str) -> str:
    marker = retired_path(profile_path, customer_id)
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return (f"nothing to destroy: no deployment of {customer_id} is recorded "
                f"({record.record_path(profile_path, customer_id)} does not exist)")
    except (OSError, ValueError):
        return f"nothing to destroy: the deployment was destroyed before ({marker})"
    return (f"nothing to destroy: the deployment of {customer_id} was destroyed on "
            f"{data.get('destroyed_at', '?')} (see {marker})")


def _confirm(customer_id: str, hosts: list[str], options: DestroyOptions,
             ask: Ask | None) -> None:
    if options.confirmed:
        return
    if ask is None:
        raise Aborted(f"destroy removes the deployment of {customer_id} from "
                      f"{', '.join(hosts)}, and there is no terminal to confirm it: pass "
                      "--yes-i-really-mean-it")
    typed = ask(f"This removes backend.chat and its data from {', '.join(hosts)}"
                + (" after a final backup" if options.backup else ", WITHOUT a final backup")
                + f".\nType the customer id ({customer_id}) to go on")
    if typed.strip() != customer_id:
        raise Aborted("destroy cancelled: the customer id was not typed (nothing was removed)")


def destroy(profile_path: Path, options: DestroyOptions, *, ask: Ask | None = None,
            reporter: Callable[[Redactor], Reporter] | None = None,
            say: Callable[[str], None] | None = None) -> DestroyResult:
    """Remove the profile's deployment from its hosts; a no-op (``already`` set)
    when none is recorded. Raises :class:`Aborted` when not confirmed and
    :class:`~selfhost.errors.DeployFailed` naming host and task when a step fails."""
    profile = load_profile(profile_path)
    the_plan = plan(profile)
    customer = the_plan.customer.id
    rec_path = record.record_path(profile_path, customer)
    previous = record.read(rec_path)
    if previous is None:
        return DestroyResult(customer_id=customer, already=_already(profile_path, customer))
    reachable = {h.name for h in the_plan.hosts}
    missing = [h.name for h in previous.hosts if h.name not in reachable]
    if missing:
        raise InvalidInput(f"{profile_path}: hosts: the deployment record {rec_path} lists "
                           f"{', '.join(missing)}, which the profile no longer has: add "
                           "them back to the profile to destroy them too")
    arch = archive.archive_path(profile_path, customer)
    if arch.exists() and options.sign_key is None:
        raise InvalidInput(f"the subprocessor archive {arch} must record the retirement: "
                           "pass --sign-key KEY (the key that signs it)")
    hosts = [h.name for h in previous.hosts]
    _confirm(customer, hosts, options, ask)
    target = resolve_target(profile, inventory_file=options.inventory,
                            sandbox=options.sandbox, source=profile_path)

    engine = choose(options.engine)
    has_backup = any("backup" in h.components for h in previous.hosts)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    fetch = (record.state_dir(profile_path, customer) / BACKUPS_DIR / stamp
             if options.backup and has_backup else None)
    if fetch is not None:
        fetch.mkdir(parents=True, mode=0o700)
    if say is not None:
        say(f"destroying the deployment of {customer} on {', '.join(hosts)}")
        if options.backup and not has_backup:
            say("no host runs the backup component: there is no final backup to take")
    removal = Removal(components={h.name: list(h.components) for h in previous.hosts},
                      full=True, fetch_dir=fetch, stamp=stamp)
    ran = remove(target, removal, engine=engine, timeout=options.timeout, reporter=reporter)

    result = DestroyResult(customer_id=customer, hosts=hosts, engine=engine,
                           seconds=ran.seconds, backup_dir=fetch)
    if fetch is not None:
        result.backups = {d.name: sorted(p for p in d.iterdir() if p.is_file())
                          for d in sorted(fetch.iterdir()) if d.is_dir()}
    result.retired_record = _retire_record(profile_path, customer, rec_path, hosts, fetch)
    if options.sign_key is not None:
        result.archive_entry = retire(arch, options.sign_key, hosts, "selfhost destroy")
    return result


def _retire_record(profile_path: Path, customer: str, rec_path: Path, hosts: list[str],
                   fetch: Path | None) -> Path:
    """The record moves aside (a later deploy starts afresh) and the marker says when."""
    retired = rec_path.with_name(f"deployment.destroyed-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json")
    rec_path.replace(retired)
    record.list_path(profile_path, customer).unlink(missing_ok=True)
    marker = {"destroyed_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "tool_version": __version__, "hosts": hosts, "record": retired.name,
              "final_backup": str(fetch) if fetch is not None else None}
    write_atomic(retired_path(profile_path, customer),
                 (json.dumps(marker, indent=2, sort_keys=True) + "\n").encode(), mode=0o644)
    return retired
