"""Release manifests are validated on the controller, before they reach a unit file."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
from input_support import PROFILE as BASE
from input_support import validate

PROFILE = BASE + "app:\n  release: release.tar.gz\n"
GOOD: dict[str, Any] = {"format": 1, "name": "backend-chat", "version": "2026.11.1",
                        "run": ["bin/backend-chat", "serve"], "debian_packages": ["python3"]}


def _tarball(path: Path, manifest: bytes | None) -> None:
    with tarfile.open(path, "w:gz") as tar:
        files = {"bin/backend-chat": b"#!/bin/sh\n"}
        if manifest is not None:
            files["selfhost-release.json"] = manifest
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _validate(tmp_path: Path, manifest: bytes | None) -> tuple[int, str]:
    _tarball(tmp_path / "release.tar.gz", manifest)
    return validate(tmp_path, PROFILE)


def _manifest(**changes: Any) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


def test_a_good_manifest_validates(tmp_path: Path) -> None:
    assert _validate(tmp_path, _manifest())[0] == 0


@pytest.mark.parametrize(("changes", "message"), [
    # this version would add a root ExecStartPre= line to the unit
    ({"version": "1.0\nExecStartPre=+/bin/sh -c 'id > /root/pwned'"},
     "version: contains the control character '\\n' (remove it; values here are "
     "single-line text without control characters)"),
    ({"version": "1.0 %n"}, "version: invalid value (expected a version such as "
     "2026.11.1: letters, digits and . + ~ _ -)"),
    ({"run": "bin/backend-chat serve"}, "run: write the command as a list of arguments, "
     'e.g. ["bin/backend-chat", "serve"], not a shell command line'),
    ({"run": ["bin/backend-chat", "serve\n--evil"]}, "run: contains the control character "
     "'\\n' (remove it; values here are single-line text without control characters)"),
    ({"format": 2}, "format: Input should be 1 (use one of those values)"),
    ({"notify": "yes"}, "notify: Input should be a valid boolean (write true or false)"),
    ({"debian_packages": ["python3; rm -rf /"]}, "debian_packages.0: invalid value "
     "(expected Debian package names such as python3)"),
    ({"user": "root"}, "user: unknown key (remove it; valid keys here: format, name, "
     "version, run, notify, debian_packages)"),
])
def test_a_bad_manifest_is_refused_before_deploy(tmp_path: Path, changes: dict[str, Any],
                                                 message: str) -> None:
    assert _validate(tmp_path, _manifest(**changes)) == (
        2, f"P:13: app.release: selfhost-release.json: {message}")


def test_a_manifest_with_a_repeated_key_is_refused(tmp_path: Path) -> None:
    text = b'{"format": 1, "run": ["bin/backend-chat"], "run": ["/bin/sh"]}'
    assert _validate(tmp_path, text) == (
        2, "P:13: app.release: selfhost-release.json: the key 'run' appears twice (keep one)")


def test_a_tarball_without_a_manifest_is_refused(tmp_path: Path) -> None:
    assert _validate(tmp_path, None) == (
        2, "P:13: app.release: T/release.tar.gz has no selfhost-release.json at its top "
           "level (see ansible/README.md, Release tarballs)")


def test_a_release_that_is_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "release.tar.gz")
    assert validate(tmp_path, PROFILE) == (
        2, "P:13: app.release: T/release.tar.gz: it is a FIFO, not a regular file (give the "
           "release tarball)")
