"""The profile rules that read files: provided certificates and stored secrets.

The Profile model checks what a profile says; these check it against what is
on disk beside it. Relative paths in a profile are relative to its directory.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from selfhost import certs, secrets
from selfhost.errors import SecretsError
from selfhost.models import Profile

if TYPE_CHECKING:
    from selfhost.profile_io import Finding, LineMap


def resolve(profile_path: Path, value: str) -> Path:
    """A path written in a profile, made absolute against the profile's directory."""
    candidate = Path(value).expanduser()
    return candidate if candidate.is_absolute() else profile_path.parent / candidate


def file_findings(profile: Profile, path: Path, lines: LineMap,
                  now: datetime | None = None) -> list[Finding]:
    from selfhost.profile_io import Finding

    source = str(path)
    out: list[Finding] = []

    def add(field: str, message: str, *, warning: bool = False) -> None:
        out.append(Finding(source, lines.line_of(field), field, message, warning))

    if profile.tls.mode == "provided":
        readable = True
        for field in ("tls.cert_file", "tls.key_file"):
            value = getattr(profile.tls, field.split(".")[1])
            assert value is not None  # the model requires both in provided mode
            target = resolve(path, value)
            try:
                target.read_bytes()
            except OSError as exc:
                readable = False
                add(field, f"cannot read {target} ({exc.strerror or exc}) (check the path; "
                    "relative paths start at the profile's directory)")
        if readable and profile.tls.cert_file and profile.tls.key_file:
            for problem in certs.check_provided(
                resolve(path, profile.tls.cert_file), resolve(path, profile.tls.key_file),
                profile.tls.domain, now or datetime.now(UTC),
            ):
                add(problem.field, problem.message, warning=problem.warning)

    try:
        names = set(secrets.stored_names(path))
    except SecretsError as exc:
        add("", exc.message)
        names = set()
    if profile.ai.provider == "disabled":
        for name in sorted(names & set(secrets.AI_KEY_NAMES)):
            add("ai.provider", f"AI is disabled but the secrets file holds {name} (remove it "
                f"with selfhost init --force, or set ai.provider)")
    return out
