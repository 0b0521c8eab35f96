"""A profile's release is checked on the controller (signature by a key the profile
trusts, payload as signed, manifest and members fit) before anything reaches a host."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from input_support import PROFILE as BASE
from input_support import validate

from release_support import (
    Keys,
    make_keys,
    members,
    probe_release,
    signed_tarball,
    tar_bytes,
    write_tarball,
)
from selfhost.cli import main
from selfhost.deploy import runner, service
from selfhost.ed25519 import load_private_key, sign_detached
from selfhost.init import InitRequest, run_init

PROFILE = BASE + "app:\n  release: release.tar.gz\n  release_keys: [vendor.pub]\n"


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return make_keys(tmp_path)


def _signed(tmp_path: Path, keys: Keys, **fields: Any) -> Path:
    return signed_tarball(tmp_path / "release.tar.gz", tar_bytes([]), keys, **fields)


def test_a_release_signed_by_a_trusted_key_validates(tmp_path: Path, keys: Keys) -> None:
    _signed(tmp_path, keys)
    assert validate(tmp_path, PROFILE) == (0, "OK: P is valid (0 third parties)")


def test_a_release_without_trusted_keys_is_refused(tmp_path: Path, keys: Keys) -> None:
    _signed(tmp_path, keys)
    assert validate(tmp_path, BASE + "app:\n  release: release.tar.gz\n") == (
        2, "P:12: app.release_keys: a release is deployed only when it is signed by a key "
           "the profile trusts (add app.release_keys: [vendor-release.pub], the vendor's "
           "public key file)")


@pytest.mark.parametrize(("changes", "message"), [
    # this version would add a root ExecStartPre= line to the unit
    ({"version": "1.0\nExecStartPre=+/bin/sh -c 'id > /root/pwned'"},
     "version: contains the control character '\\n' (remove it; values here are "
     "single-line text without control characters)"),
    ({"version": "1.0 %n"}, "version: invalid value (expected a version such as "
     "2026.11.1: letters, digits and . + ~ _ -)"),
    ({"run": "bin/backend-chat serve"}, "run: write the command as a list of arguments, "
     'e.g. ["bin/backend-chat", "serve"], not a shell command line'),
    ({"run": ["/bin/app", "serve\n--evil"]}, "run: contains the control character "
     "'\\n' (remove it; values here are single-line text without control characters)"),
    ({"migrations": [{"id": "1", "run": "psql -f x.sql"}]}, "migrations.0.run: write the "
     'command as a list of arguments, e.g. ["bin/backend-chat", "serve"], not a shell '
     "command line"),
    ({"migrations": [{"id": "1", "run": ["/bin/m"], "timeout": 0}]}, "migrations.0.timeout: "
     "Input should be greater than or equal to 1 (change the value)"),
    ({"health": {"path": "healthz"}}, "health.path: invalid value (expected a path such "
     "as /healthz: letters, digits and . _ ~ / -)"),
    ({"format": 3}, "format: Input should be 2 (use one of those values)"),
    ({"notify": "yes"}, "notify: Input should be a valid boolean (write true or false)"),
    ({"debian_packages": ["python3; rm -rf /"]}, "debian_packages.0: invalid value "
     "(expected Debian package names such as python3)"),
    ({"user": "root"}, "user: unknown key (remove it; valid keys here: format, name, "
     "version, run, notify, debian_packages, upgrade_from, required_stops, health, "
     "migrations, payload)"),
])
def test_a_bad_signed_manifest_is_refused_before_deploy(
        tmp_path: Path, keys: Keys, changes: dict[str, Any], message: str) -> None:
    _signed(tmp_path, keys, **changes)
    assert validate(tmp_path, PROFILE) == (
        2, f"P:13: app.release: selfhost-release.json: {message}")


def test_a_manifest_with_a_repeated_key_is_refused(tmp_path: Path, keys: Keys) -> None:
    good = _signed(tmp_path, keys)
    text = dict(members(good))["selfhost-release.json"].replace(
        b'"run": [', b'"run": ["/bin/sh"], "run": [')
    write_tarball(good, [("selfhost-release.json", text), ("selfhost-release.sig",
                  sign_detached(text, "selfhost-release.json", load_private_key(keys.private))),
                  ("payload.tar", tar_bytes([]))])
    assert validate(tmp_path, PROFILE) == (
        2, "P:13: app.release: selfhost-release.json: the key 'run' appears twice (keep one)")


def test_a_tarball_without_a_manifest_is_refused(tmp_path: Path, keys: Keys) -> None:
    write_tarball(tmp_path / "release.tar.gz", [("bin/app", b"#!/bin/sh\n")])
    assert validate(tmp_path, PROFILE) == (
        2, "P:13: app.release: T/release.tar.gz: the first member is not "
           "selfhost-release.json (build releases with selfhost release build)")


def test_a_release_that_is_a_fifo_is_refused_at_once(tmp_path: Path, keys: Keys) -> None:
    os.mkfifo(tmp_path / "release.tar.gz")
    assert validate(tmp_path, PROFILE) == (
        2, "P:13: app.release: T/release.tar.gz: it is a FIFO, not a regular file (give the "
           "release tarball)")


def test_a_release_signed_by_another_key_names_the_fix(tmp_path: Path, keys: Keys) -> None:
    _signed(tmp_path, make_keys(tmp_path, "stranger"))
    code, output = validate(tmp_path, PROFILE)
    assert (code, output.endswith("; if the vendor signs with this key, add its public key "
                                  "file to app.release_keys")) == (2, True)


# -- deploy ------------------------------------------------------------------------------

SUPPLIED: dict[str, str] = {}


def _deploy_profile(tmp_path: Path, key_file: Path) -> Path:
    profile = tmp_path / "p.yaml"
    run_init(InitRequest(output=profile, preset="air-gapped", key_file=key_file,
                         environ=SUPPLIED,
                         sets=("hosts.app.0.address=127.0.0.1", "app.release=release.tar.gz",
                               "app.release_keys=[vendor.pub]")), None, None)
    return profile


def _runner_must_not_run(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("the runner was called")


@pytest.mark.parametrize("tamper", ["unsigned", "payload", "untrusted"])
def test_deploy_refuses_a_bad_release_before_the_runner(
        tmp_path: Path, keys: Keys, key_file: Path, monkeypatch: pytest.MonkeyPatch,
        tamper: str) -> None:
    release = probe_release(tmp_path, "v1", keys)
    profile = _deploy_profile(tmp_path, key_file)
    entries = members(release)
    if tamper == "unsigned":
        entries = [e for e in entries if e[0] != "selfhost-release.sig"]
    elif tamper == "payload":
        payload = bytearray(entries[2][1])
        payload[payload.index(b"APP_NAME")] ^= 1
        entries[2] = ("payload.tar", bytes(payload))
    else:
        (tmp_path / "s").mkdir()
        entries = members(probe_release(tmp_path / "s", "v1", make_keys(tmp_path, "other")))
    write_tarball(tmp_path / "release.tar.gz", entries)
    monkeypatch.setattr(runner, "run_playbook", _runner_must_not_run)
    result = CliRunner().invoke(main, ["deploy", str(profile), "--key-file", str(key_file),
                                       "--yes"])
    expected = {"unsigned": "is not signed (no selfhost-release.sig after the manifest)",
                "payload": "payload.tar does not match the sha256 and size the signed "
                           "manifest states",
                "untrusted": "which is not trusted"}[tamper]
    assert (result.exit_code, f"{tmp_path}/release.tar.gz" in result.output,
            expected in result.output, "app.release:" in result.output) == (2, True, True, True)


def test_deploy_hands_the_checked_manifest_and_digest_to_the_role(
        tmp_path: Path, keys: Keys, key_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = probe_release(tmp_path, "v2", keys)
    release.rename(tmp_path / "release.tar.gz")
    profile = _deploy_profile(tmp_path, key_file)
    seen: dict[str, Any] = {}

    def capture(request: service.RunRequest, *_args: object) -> None:
        seen.update(request.extravars)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_playbook", capture)
    result = CliRunner().invoke(main, ["deploy", str(profile), "--key-file", str(key_file),
                                       "--yes"])
    manifest = json.loads(dict(members(tmp_path / "release.tar.gz"))["selfhost-release.json"])
    assert (result.exit_code, seen["selfhost_app_release_sha256"],
            seen["selfhost_app_release_manifest"]) == (
        130, hashlib.sha256((tmp_path / "release.tar.gz").read_bytes()).hexdigest(), manifest)
