"""The profile rules that read files: provided certificates and stored secrets.

The Profile model checks what a profile says; these check it against what is
on disk beside it. Relative paths in a profile are relative to its directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from selfhost import certs, inputs, release, secrets
from selfhost.errors import SecretsError
from selfhost.models import Profile


@dataclass(frozen=True)
class Problem:
    field: str
    message: str
    warning: bool = False


def resolve(profile_path: Path, value: str) -> Path:
    """A path written in a profile, made absolute against the profile's directory."""
    candidate = Path(value).expanduser()
    return candidate if candidate.is_absolute() else profile_path.parent / candidate


def named_files(profile: Profile) -> list[tuple[str, str]]:
    """(field, path as written) of every file the profile names: what a deploy of it
    reads beside the profile (the provided certificate and key, the private ACME CA,
    the release and its trusted keys, the catalog overlay)."""
    out: list[tuple[str, str]] = []
    if profile.tls.mode == "provided":
        out += [(f"tls.{name}", value) for name in ("cert_file", "key_file")
                if (value := getattr(profile.tls, name))]
    if profile.tls.mode == "acme" and profile.tls.acme.ca_file:
        out.append(("tls.acme.ca_file", profile.tls.acme.ca_file))
    if profile.app.release:
        out.append(("app.release", profile.app.release))
    out += [(f"app.release_keys.{i}", key) for i, key in enumerate(profile.app.release_keys)]
    if profile.catalog_overlay:
        out.append(("catalog_overlay", profile.catalog_overlay))
    return out


def tls_problems(profile: Profile, path: Path, now: datetime | None = None) -> list[Problem]:
    """Provided certificate and key files: readable, well-formed, matching, in date."""
    if profile.tls.mode != "provided":
        return []
    out: list[Problem] = []
    files: list[Path] = []
    for field in ("tls.cert_file", "tls.key_file"):
        value = getattr(profile.tls, field.split(".")[1])
        assert value is not None  # the model requires both in provided mode
        target = resolve(path, value)
        try:
            inputs.read_bytes(target, inputs.PEM_LIMIT)
        except OSError as exc:
            out.append(Problem(field, f"cannot read {target} ({exc.strerror or exc}) (check "
                               "the path; relative paths start at the profile's directory)"))
        files.append(target)
    if out:
        return out
    return [Problem(p.field, p.message, p.warning) for p in certs.check_provided(
        files[0], files[1], profile.tls.domain, now or datetime.now(UTC))]


def secrets_problems(profile: Profile, path: Path) -> list[Problem]:
    """Stored secrets that contradict the profile, read without the passphrase.

    An AI provider key kept beside a profile whose AI is disabled (or set to
    another provider) would let data flow to a party the profile excludes.
    """
    try:
        names = set(secrets.stored_names(path))
    except SecretsError as exc:
        return [Problem("", exc.message)]
    wanted = {f"{profile.ai.provider}_api_key"}
    out = []
    for name in sorted((names & set(secrets.AI_KEY_NAMES)) - wanted):
        setting = ("AI is disabled" if profile.ai.provider == "disabled"
                   else f"the AI provider is {profile.ai.provider}")
        out.append(Problem("ai.provider", f"{setting} but {secrets.secrets_path(path)} holds "
                           f"{name} (re-run selfhost init --force to drop it, or change "
                           "ai.provider)"))
    return out


#: how a profile comes to trust another release key
TRUST_HINT = ("if the vendor signs with this key, add its public key file to "
              "app.release_keys")


def verified_release(profile: Profile, path: Path) -> release.VerifiedRelease | None:
    """The profile's release, its signature, payload hash and members checked
    (:class:`release.ReleaseError` when it fails); None without a release."""
    if not profile.app.release:
        return None
    return release.verified(resolve(path, profile.app.release),
                            [resolve(path, k) for k in profile.app.release_keys],
                            trust_hint=TRUST_HINT)


def release_problems(profile: Profile, path: Path) -> list[Problem]:
    """The release tarball: signed by a trusted key, payload as signed, manifest
    and members fit, checked before anything of it can reach a host."""
    if not profile.app.release_keys:
        return []  # the model already asks for keys when there is a release
    try:
        verified_release(profile, path)
    except release.ReleaseError as exc:
        return [Problem("app.release", exc.message)]
    return []


def file_problems(profile: Profile, path: Path, now: datetime | None = None) -> list[Problem]:
    """Problems of ``profile`` (stored at ``path``) with the files beside it."""
    return (tls_problems(profile, path, now) + secrets_problems(profile, path)
            + release_problems(profile, path))
