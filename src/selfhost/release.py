"""A release tarball's manifest, validated on the controller before any deploy.

The app role turns the manifest's fields into the app's systemd unit
(``version`` into ``Description=``, ``run`` into ``ExecStart=``), so each is
checked here by a strict schema first: a version with a newline would add
lines (even a root ``ExecStartPre=+``) to the unit. The tarball is read
bounded: only the manifest's bytes are extracted, and a tarball that is no
regular file, or holds no manifest among its first entries, is refused.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, ValidationError

from selfhost import inputs, validation
from selfhost.models import Strict

#: the manifest's name at the top of the tarball (the app role's
#: ``app_release_manifest`` default names the same file)
MANIFEST = "selfhost-release.json"
MANIFEST_LIMIT = 64 * 1024
#: entries looked at before giving up on finding the manifest
MAX_MEMBERS = 100_000

_VERSION = r"^[0-9A-Za-z][0-9A-Za-z.+~_-]{0,63}$"
_PACKAGE = r"^[a-z0-9][a-z0-9+.-]{1,99}$"


class ReleaseManifest(Strict):
    format: Literal[1]
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")] = "backend-chat"
    version: Annotated[str, Field(pattern=_VERSION)] = ""
    #: argv: the program (relative to the release directory unless absolute), then
    #: its arguments; never a shell command line
    run: Annotated[list[Annotated[str, Field(min_length=1, max_length=4096)]],
                   Field(min_length=1, max_length=256)]
    notify: StrictBool = False
    debian_packages: list[Annotated[str, Field(pattern=_PACKAGE)]] = Field(
        default_factory=list, max_length=200)


_HINTS = {
    "version": "a version such as 2026.11.1: letters, digits and . + ~ _ -",
    "name": "lower-case letters, digits and . _ -",
    "debian_packages": "Debian package names such as python3",
}


class ManifestError(ValueError):
    """Why a release cannot be deployed, with the fix."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup is not None:
        raise ManifestError(f"{MANIFEST}: the key {dup!r} appears twice (keep one)")
    return dict(pairs)


def _manifest_bytes(path: Path) -> bytes:
    try:
        handle = inputs.open_regular(path)
    except inputs.UnfitFile as exc:
        raise ManifestError(f"{path}: {exc.reason} (give the release tarball)") from None
    with handle:
        try:
            with tarfile.open(fileobj=handle, mode="r:*") as tar:
                for count, member in enumerate(tar):
                    if count >= MAX_MEMBERS:
                        break
                    if member.name.removeprefix("./") != MANIFEST:
                        continue
                    if not member.isreg() or member.size > MANIFEST_LIMIT:
                        raise ManifestError(f"{MANIFEST} in {path} is not a regular file of "
                                            f"at most {MANIFEST_LIMIT} bytes")
                    extracted = tar.extractfile(member)
                    assert extracted is not None  # a regular member
                    return extracted.read(MANIFEST_LIMIT + 1)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ManifestError(f"{path} is not a readable tarball ({exc})") from None
    raise ManifestError(f"{path} has no {MANIFEST} at its top level (see ansible/README.md, "
                        "Release tarballs)")


def read_manifest(path: Path) -> ReleaseManifest:
    """The validated manifest of the release tarball ``path``; raises ManifestError."""
    try:
        data = json.loads(_manifest_bytes(path), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{MANIFEST}: not JSON ({exc})") from None
    except FileNotFoundError:
        raise ManifestError(f"{path} does not exist (check app.release; relative paths "
                            "start at the profile's directory)") from None
    except OSError as exc:
        raise ManifestError(f"cannot read {path} ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{MANIFEST}: expected an object such as "
                            '{"format": 1, "run": ["bin/backend-chat", "serve"]}')
    try:
        return ReleaseManifest.model_validate(data)
    except ValidationError as exc:
        problems = validation.field_errors(exc, ReleaseManifest)
    raise ManifestError("; ".join(f"{MANIFEST}: {p}: {_hinted(p, m)}" for p, m in problems))


def _hinted(path: str, message: str) -> str:
    hint = _HINTS.get(path.split(".", maxsplit=1)[0])
    if hint and "pattern" in message:
        return f"invalid value (expected {hint})"
    if path.startswith("run") and "list" in message:
        return "write the command as a list of arguments, e.g. [\"bin/backend-chat\", " \
               "\"serve\"], not a shell command line"
    return message
