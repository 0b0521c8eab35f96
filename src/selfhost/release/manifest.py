"""A release's manifest (``selfhost-release.json``): the strict schema and its hints.

The app role turns the manifest's fields into the app's systemd unit
(``version`` into ``Description=``, ``run`` into ``ExecStart=``), so each is
checked here first: a version with a newline would add lines (even a root
``ExecStartPre=+``) to the unit. Every command is argv, never a shell line.
The manifest is what the vendor signs; it carries the payload's sha256, so the
signature covers every byte of the release.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Self

from pydantic import Field, StrictBool, ValidationError, model_validator

from selfhost import validation
from selfhost.errors import InvalidInput
from selfhost.models import Strict

#: the manifest, its signature and the payload: the tarball's three members, in order
MANIFEST = "selfhost-release.json"
SIGNATURE = "selfhost-release.sig"
PAYLOAD = "payload.tar"
MANIFEST_LIMIT = 64 * 1024
FORMAT = 2

VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z.+~_-]{0,63}$"
_PACKAGE = r"^[a-z0-9][a-z0-9+.-]{1,99}$"

Version = Annotated[str, Field(pattern=VERSION_PATTERN)]
Argv = Annotated[list[Annotated[str, Field(min_length=1, max_length=4096)]],
                 Field(min_length=1, max_length=256)]


class Health(Strict):
    #: answered on 127.0.0.1 at the app's port; 200 means healthy
    path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9._~/-]{0,200}$")] = "/healthz"
    #: seconds the app may take to answer 200 after a start
    timeout: Annotated[int, Field(ge=1, le=3600)] = 60


class Migration(Strict):
    id: Annotated[str, Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$")]
    #: argv, run in the release directory as the app's user with its environment
    run: Argv
    #: seconds before the migration is stopped and counted as failed
    timeout: Annotated[int, Field(ge=1, le=86400)] = 600


class Payload(Strict):
    file: Literal["payload.tar"] = "payload.tar"
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    size: Annotated[int, Field(ge=0)]


class ReleaseManifest(Strict):
    format: Literal[2]
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")] = "backend-chat"
    version: Version
    #: argv: the program (relative to the release directory unless absolute), then
    #: its arguments; never a shell command line
    run: Argv
    notify: StrictBool = False
    debian_packages: list[Annotated[str, Field(pattern=_PACKAGE)]] = Field(
        default_factory=list, max_length=200)
    #: versions that may be running when this release is installed over them
    upgrade_from: list[Version] = Field(default_factory=list, max_length=1000)
    #: of ``upgrade_from``: versions an older deployment must pass through first
    required_stops: list[Version] = Field(default_factory=list, max_length=100)
    health: Health = Field(default_factory=Health)
    #: run once, in order, before the release serves
    migrations: list[Migration] = Field(default_factory=list, max_length=500)
    payload: Payload

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[tuple[str, str]] = []
        for field in ("upgrade_from", "required_stops"):
            values: list[str] = getattr(self, field)
            if dup := next((v for v in values if values.count(v) > 1), None):
                problems.append((field, f"{dup!r} is listed twice (keep one)"))
        if self.version in self.upgrade_from:
            problems.append(("upgrade_from", f"lists this release's own version "
                             f"{self.version!r} (remove it)"))
        for stop in self.required_stops:
            if stop not in self.upgrade_from:
                problems.append(("required_stops", f"{stop!r} is not in upgrade_from (a "
                                 "required stop is a version this release upgrades from)"))
        ids = [m.id for m in self.migrations]
        if dup := next((i for i in ids if ids.count(i) > 1), None):
            problems.append(("migrations", f"the id {dup!r} is used twice (give each "
                             "migration its own id)"))
        if problems:
            raise validation.CrossFieldErrors(problems)
        return self


_HINTS = {
    "version": "a version such as 2026.11.1: letters, digits and . + ~ _ -",
    "upgrade_from": "versions such as 2026.11.1: letters, digits and . + ~ _ -",
    "required_stops": "versions such as 2026.11.1: letters, digits and . + ~ _ -",
    "name": "lower-case letters, digits and . _ -",
    "debian_packages": "Debian package names such as python3",
    "health": "a path such as /healthz: letters, digits and . _ ~ / -",
    "migrations": "an id such as 0002_add_notes: letters, digits and . _ -",
    "payload": "64 lower-case hex digits (selfhost release build writes it)",
}


class ReleaseError(InvalidInput):
    """Why a release cannot be deployed, with the fix (exit 2)."""


class NotGenuine(ReleaseError):
    """The release is not what its vendor signed: signature, key or payload hash."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup is not None:
        raise ReleaseError(f"{MANIFEST}: the key {dup!r} appears twice (keep one)")
    return dict(pairs)


def load_json(data: bytes, where: str = MANIFEST) -> dict[str, Any]:
    """A manifest's JSON object, repeated keys refused."""
    try:
        obj = json.loads(data, object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReleaseError(f"{where}: not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ReleaseError(f"{where}: expected an object such as "
                           '{"name": "backend-chat", "run": ["bin/backend-chat", "serve"]}')
    return obj


def validate_manifest(data: dict[str, Any], where: str = MANIFEST) -> ReleaseManifest:
    if data.get("format") == 1:
        raise ReleaseError(f"{where}: format 1 releases carry no signature or payload "
                           "hash (rebuild the release with selfhost release build)")
    try:
        return ReleaseManifest.model_validate(data)
    except ValidationError as exc:
        problems = validation.field_errors(exc, ReleaseManifest)
    raise ReleaseError("; ".join(f"{where}: {p}: {_hinted(p, m)}" for p, m in problems))


def parse_manifest(data: bytes) -> ReleaseManifest:
    return validate_manifest(load_json(data))


def dump_manifest(manifest: ReleaseManifest) -> bytes:
    """The manifest's bytes as signed: sorted keys, two-space indent, final newline."""
    return (json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True)
            + "\n").encode("utf-8")


def _hinted(path: str, message: str) -> str:
    hint = _HINTS.get(path.split(".", maxsplit=1)[0])
    if hint and "pattern" in message:
        return f"invalid value (expected {hint})"
    if (path.startswith("run") or ".run" in path) and "list" in message:
        return "write the command as a list of arguments, e.g. [\"bin/backend-chat\", " \
               "\"serve\"], not a shell command line"
    return message


def upgrade_refusal(manifest: ReleaseManifest, running: str | None) -> str | None:
    """Why ``manifest`` may not be installed over ``running`` (None: a fresh install
    or an allowed path); the message names the next hop when there is a stop."""
    if running is None or running == manifest.version or running in manifest.upgrade_from:
        return None
    stops = (f"; install the required stop {' then '.join(manifest.required_stops)} first"
             if manifest.required_stops else "")
    allowed = ", ".join(manifest.upgrade_from) or "none: fresh installs only"
    return (f"{manifest.name} {manifest.version} does not upgrade from {running} "
            f"(it upgrades from {allowed}){stops}")
