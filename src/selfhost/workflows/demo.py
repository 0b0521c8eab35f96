"""``selfhost demo``: the README's walk-through, end to end, on sandbox hosts.

Sandbox guests (as many as the preset's Plan has hosts) -> ``init`` of the preset
with the guests' addresses -> ``deploy`` -> ``verify`` -> the subprocessor list in
Markdown, HTML and JSON. The secrets passphrase is generated once and kept in a 0600
file in the work dir, so a second run reuses the profile, its secrets and
the guests, and its deploy changes nothing.
"""

from __future__ import annotations

import os
import secrets as random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from selfhost import sandbox
from selfhost.atomic import write_atomic
from selfhost.deploy.service import (
    Confirm,
    DeployOptions,
    DeployResult,
    ReporterFactory,
    deploy,
)
from selfhost.errors import InvalidInput
from selfhost.init import InitRequest, run_init
from selfhost.models import all_hosts
from selfhost.paths import DEFAULT_PRESET, preset_names, preset_path
from selfhost.profile_io import load_profile
from selfhost.subprocessors.files import EXTENSIONS, FORMATS
from selfhost.subprocessors.render import render_profile, today
from selfhost.verify import VerifyResult, verify

PASSPHRASE_FILE = "passphrase"  # noqa: S105 - a file name, not a password


@dataclass
class DemoResult:
    workdir: Path
    profile_path: Path
    secrets_path: Path
    passphrase_file: Path
    sandbox: str
    #: guest name -> address, in the profile's host order
    guests: dict[str, str]
    deployment: DeployResult
    verification: VerifyResult
    verify_report: Path
    lists: dict[str, Path] = field(default_factory=dict)


def sandbox_name(release: str) -> str:
    return f"demo-{release}"


def _passphrase(workdir: Path) -> tuple[str, Path]:
    path = workdir / PASSPHRASE_FILE
    if path.exists():
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value, path
    value = random.token_urlsafe(32)
    write_atomic(path, (value + "\n").encode(), mode=0o600)
    return value, path


def address_sets(preset: str, addresses: list[str]) -> tuple[str, ...]:
    """``--set`` overrides putting the preset's hosts, in Plan order, on ``addresses``."""
    profile = load_profile(preset_path(preset))
    sets = ["hosts.ssh_user=root"]
    app_count = len(profile.hosts.app)
    for index, address in enumerate(addresses[:app_count]):
        sets.append(f"hosts.app.{index}.address={address}")
    rest = iter(addresses[app_count:])
    for role in ("database", "cache"):
        if getattr(profile.hosts, role) is not None:
            sets.append(f"hosts.{role}.address={next(rest)}")
    return tuple(sets)


def run_demo(preset: str = DEFAULT_PRESET, release: str = sandbox.DEFAULT_RELEASE,
             workdir: Path | None = None, *, reporter: ReporterFactory | None = None,
             say: Callable[[str], None] | None = None,
             confirm: Confirm | None = None) -> DemoResult:
    if preset not in preset_names():
        raise InvalidInput(f"--preset {preset}: no such preset (choose one of: "
                           f"{', '.join(preset_names())})")
    tell = say or (lambda _line: None)
    work = (workdir or Path.cwd() / "selfhost-demo").resolve()
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    passphrase, pass_file = _passphrase(work)

    hosts = len(all_hosts(load_profile(preset_path(preset))))
    name = sandbox_name(release)
    tell(f"sandbox {name}: {hosts} Debian {release} guest(s)")
    box = sandbox.up(name, hosts, release, progress=tell)
    guests = box.guests[:hosts]

    profile_path = work / f"{preset}.yaml"
    tell(f"init {profile_path} from the preset {preset}")
    created = run_init(InitRequest(
        output=profile_path, preset=preset,
        sets=address_sets(preset, [g.address for g in guests]), force=True,
        passphrase=passphrase, environ=dict(os.environ)), None, None)

    tell(f"deploy {profile_path} onto {', '.join(g.name for g in guests)}")
    result = deploy(profile_path, DeployOptions(sandbox=name, yes=True, passphrase=passphrase),
                    reporter=reporter, confirm=confirm, say=tell)

    report = work / "verify.json"
    tell(f"verify the live hosts against {profile_path}")
    checked = verify(profile_path, sandbox=name, json_path=report)

    lists: dict[str, Path] = {}
    for fmt in FORMATS:
        output = work / f"subprocessors.{EXTENSIONS[fmt]}"
        render_profile(profile_path, fmt=fmt, on=today(), output=output)
        lists[fmt] = output
    return DemoResult(workdir=work, profile_path=profile_path,
                      secrets_path=created.secrets_path, passphrase_file=pass_file,
                      sandbox=name, guests={g.name: g.address for g in guests},
                      deployment=result, verification=checked, verify_report=report,
                      lists=lists)
