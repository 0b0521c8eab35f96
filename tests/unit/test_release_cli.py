"""`selfhost release build` and `release verify`: the signed format, and each refusal
with its message and exit code."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from release_support import (
    Keys,
    make_keys,
    members,
    signed_tarball,
    tar_bytes,
    write_tarball,
)
from selfhost.cli import main

DESCRIPTION = {"run": ["bin/serve", "--port", "8000"], "upgrade_from": ["0.9"],
               "migrations": [{"id": "0001_init", "run": ["bin/migrate"], "timeout": 30}]}


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _out(result: Result, tmp_path: Path) -> tuple[int, str]:
    return result.exit_code, result.output.replace(str(tmp_path), "T").strip()


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return make_keys(tmp_path)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    (app / "bin").mkdir(parents=True)
    for name, body in (("serve", b"#!/bin/sh\nexec sleep infinity\n"),
                       ("migrate", b"#!/bin/sh\nexit 0\n")):
        (app / "bin" / name).write_bytes(body)
        (app / "bin" / name).chmod(0o755)
    (app / "README").write_text("the app\n")
    (app / "selfhost-release.json").write_text(json.dumps(DESCRIPTION))
    return app


def _build(source: Path, keys: Keys, out: Path, version: str = "1.0") -> Result:
    return _cli("release", "build", str(source), "--version", version, "--sign-key",
                str(keys.private), "--output", str(out))


@pytest.fixture
def built(tmp_path: Path, source: Path, keys: Keys) -> Path:
    out = tmp_path / "r.tar.gz"
    assert _build(source, keys, out).exit_code == 0
    return out


def _verify(path: Path, keys: Keys, *extra: str) -> Result:
    return _cli("release", "verify", str(path), "--trusted-key", str(keys.public), *extra)


def test_the_same_inputs_give_the_same_bytes(tmp_path: Path, source: Path, keys: Keys,
                                             built: Path) -> None:
    # other mtimes, another umask-like mode and another creation order of the files
    for path in source.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    (source / "README").chmod(0o600)
    again = tmp_path / "again.tar.gz"
    assert _build(source, keys, again).exit_code == 0
    assert again.read_bytes() == built.read_bytes()


def test_the_tarball_holds_manifest_signature_and_a_normalised_payload(
        built: Path, keys: Keys) -> None:
    entries = members(built)
    assert [name for name, _ in entries] == ["selfhost-release.json", "selfhost-release.sig",
                                             "payload.tar"]
    manifest = json.loads(entries[0][1])
    payload = entries[2][1]
    assert (manifest["version"], manifest["format"], manifest["payload"]) == (
        "1.0", 2, {"file": "payload.tar", "sha256": hashlib.sha256(payload).hexdigest(),
                   "size": len(payload)})
    # the signature is checked with cryptography alone, not with selfhost's code
    sig = json.loads(entries[1][1])
    public = load_pem_public_key(keys.public.read_bytes())
    public.verify(base64.b64decode(sig["value"]), entries[0][1])  # type: ignore[union-attr]
    with tarfile.open(fileobj=io.BytesIO(payload)) as inner:
        rows = [(m.name, m.mode, m.mtime, m.uid, m.gid, m.uname) for m in inner]
    assert rows == [("README", 0o644, 0, 0, 0, "root"), ("bin", 0o755, 0, 0, 0, "root"),
                    ("bin/migrate", 0o755, 0, 0, 0, "root"),
                    ("bin/serve", 0o755, 0, 0, 0, "root")]


def test_a_genuine_release_verifies(tmp_path: Path, built: Path, keys: Keys) -> None:
    result = _verify(built, keys, "--json")
    report = json.loads(result.output)
    assert (result.exit_code, report["ok"], report["version"], report["sha256"],
            report["migrations"], report["members"]) == (
        0, True, "1.0", hashlib.sha256(built.read_bytes()).hexdigest(), ["0001_init"], 4)


def _replace(built: Path, target: Path, name: str, body: bytes) -> Path:
    return write_tarball(target, [(n, body if n == name else b) for n, b in members(built)])


def test_an_unsigned_release_is_refused(tmp_path: Path, built: Path, keys: Keys) -> None:
    unsigned = write_tarball(tmp_path / "u.tar.gz", [
        (n, b) for n, b in members(built) if n != "selfhost-release.sig"])
    assert _out(_verify(unsigned, keys), tmp_path) == (
        1, "error: T/u.tar.gz is not signed (no selfhost-release.sig after the manifest): "
           "build it with selfhost release build --sign-key KEY")


def test_a_wrong_signature_is_refused(tmp_path: Path, built: Path, keys: Keys) -> None:
    sig = json.loads(dict(members(built))["selfhost-release.sig"])
    other = make_keys(tmp_path, "other")
    # a signature of the same bytes by another key, claiming the trusted key's id
    forged = json.loads(dict(members(signed_tarball(
        tmp_path / "o.tar.gz", dict(members(built))["payload.tar"], other)))[
        "selfhost-release.sig"])
    sig["value"] = forged["value"]
    bad = _replace(built, tmp_path / "w.tar.gz", "selfhost-release.sig",
                   json.dumps(sig).encode())
    assert _out(_verify(bad, keys), tmp_path) == (
        1, "error: T/w.tar.gz: the signature does not match selfhost-release.json: the "
           "manifest was changed after it was signed, or the signature was altered (do not "
           "deploy it; get the release again from the vendor)")


def test_a_tampered_manifest_is_refused(tmp_path: Path, built: Path, keys: Keys) -> None:
    manifest = dict(members(built))["selfhost-release.json"]
    bad = _replace(built, tmp_path / "m.tar.gz", "selfhost-release.json",
                   manifest.replace(b'"bin/serve"', b'"/bin/sh"'))
    result = _out(_verify(bad, keys), tmp_path)
    assert result[0] == 1
    assert result[1].startswith("error: T/m.tar.gz: the signature does not match "
                                "selfhost-release.json")


def test_a_tampered_payload_byte_is_refused(tmp_path: Path, built: Path, keys: Keys) -> None:
    payload = bytearray(dict(members(built))["payload.tar"])
    at = payload.index(b"exec sleep")
    payload[at] ^= 0x20  # one bit of the app's code
    bad = _replace(built, tmp_path / "p.tar.gz", "payload.tar", bytes(payload))
    assert _out(_verify(bad, keys), tmp_path) == (
        1, "error: T/p.tar.gz: payload.tar does not match the sha256 and size the signed "
           "manifest states: the payload was changed after it was signed (do not deploy "
           "it; get the release again from the vendor)")


def test_a_release_signed_by_an_untrusted_key_is_refused(tmp_path: Path, built: Path,
                                                         keys: Keys) -> None:
    other = make_keys(tmp_path, "other")
    signer = json.loads(dict(members(built))["selfhost-release.sig"])["key_id"]
    trusted = json.loads(_verify(built, keys, "--json").output)["key_id"]
    result = _out(_verify(built, other), tmp_path)
    assert signer == trusted
    assert result[0] == 1
    assert result[1].startswith(f"error: T/r.tar.gz: signed by the key {signer}, which is "
                                "not trusted (trusted: sha256:")
    assert result[1].endswith("); pass the vendor's public key to --trusted-key")


@pytest.mark.parametrize(("version", "message"), [
    ("1.0 beta", "version: invalid value (expected a version such as 2026.11.1: letters, "
     "digits and . + ~ _ -)"),
    ("1.0\nExecStartPre=+/bin/sh", "version: contains the control character '\\n' "
     "(remove it; values here are single-line text without control characters)"),
    ("-1", "version: invalid value (expected a version such as 2026.11.1: letters, "
     "digits and . + ~ _ -)"),
])
def test_a_bad_version_is_refused_before_anything_is_written(
        tmp_path: Path, source: Path, keys: Keys, version: str, message: str) -> None:
    out = tmp_path / "bad.tar.gz"
    assert _out(_build(source, keys, out, version), tmp_path) == (
        2, f"error: T/app/selfhost-release.json: {message}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app", "vendor.key", "vendor.pub"]


def test_a_signed_manifest_with_a_bad_version_is_refused(tmp_path: Path, keys: Keys) -> None:
    bad = signed_tarball(tmp_path / "v.tar.gz", tar_bytes([]), keys, version="1.0;rm")
    assert _out(_verify(bad, keys), tmp_path) == (
        2, "error: selfhost-release.json: version: invalid value (expected a version such "
           "as 2026.11.1: letters, digits and . + ~ _ -)")


def _member(name: str, kind: bytes = tarfile.REGTYPE, **attrs: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode = kind, 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


@pytest.mark.parametrize(("member", "problem"), [
    (_member("../../etc/cron.d/evil"), "is outside the release directory (absolute or "
     "with ..)"),
    (_member("bin/../../evil"), "is outside the release directory (absolute or with ..)"),
    (_member("/etc/passwd"), "is outside the release directory (absolute or with ..)"),
    (_member("bin/sh", tarfile.SYMTYPE, linkname="/bin/sh"), "is a symbolic link (only "
     "regular files and directories are allowed)"),
    (_member("passwd", tarfile.LNKTYPE, linkname="etc/passwd"), "is a hard link (only "
     "regular files and directories are allowed)"),
    (_member("null", tarfile.CHRTYPE, devmajor=1, devminor=3), "is a character device "
     "(only regular files and directories are allowed)"),
    (_member("fifo", tarfile.FIFOTYPE), "is a FIFO (only regular files and directories "
     "are allowed)"),
    (_member("bin/su", mode=0o4755), "has a setuid, setgid or sticky bit"),
    (_member("selfhost-release.json"), "has the name of a member of the release tarball "
     "itself"),
])
def test_an_unsafe_payload_member_is_refused_even_when_signed(
        tmp_path: Path, keys: Keys, member: tarfile.TarInfo, problem: str) -> None:
    payload = tar_bytes([_member("ok"), member])
    bad = signed_tarball(tmp_path / "t.tar.gz", payload, keys)
    assert _out(_verify(bad, keys), tmp_path) == (
        2, f"error: T/t.tar.gz: payload.tar: the member {member.name!r} {problem}; the "
           "release is refused")


def test_a_member_beside_the_signed_ones_is_refused(tmp_path: Path, built: Path,
                                                    keys: Keys) -> None:
    bad = write_tarball(tmp_path / "x.tar.gz", [*members(built), ("evil.sh", b"id\n")])
    assert _out(_verify(bad, keys), tmp_path) == (
        2, "error: T/x.tar.gz: the member 'evil.sh' is not part of a release (only the "
           "manifest, its signature and payload.tar); the release is refused")


def test_a_run_program_missing_from_the_payload_is_refused(tmp_path: Path, keys: Keys) -> None:
    bad = signed_tarball(tmp_path / "r.tar.gz", tar_bytes([_member("ok")]), keys,
                         run=["bin/serve"])
    assert _out(_verify(bad, keys), tmp_path) == (
        2, "error: T/r.tar.gz: selfhost-release.json: run: bin/serve is not a file of the "
           "payload (give a path inside the release, or an absolute one)")


def test_a_format_1_release_is_refused_with_the_rebuild(tmp_path: Path, keys: Keys) -> None:
    bad = signed_tarball(tmp_path / "f.tar.gz", tar_bytes([]), keys, format=1)
    assert _out(_verify(bad, keys), tmp_path) == (
        2, "error: selfhost-release.json: format 1 releases carry no signature or payload "
           "hash (rebuild the release with selfhost release build)")


def test_build_refuses_a_symlink_in_the_source(tmp_path: Path, source: Path,
                                               keys: Keys) -> None:
    (source / "link").symlink_to("/etc/passwd")
    assert _out(_build(source, keys, tmp_path / "l.tar.gz"), tmp_path) == (
        2, "error: T/app/link: only regular files and directories go into a release "
           "(replace the link or special file with a copy)")


def test_build_refuses_a_version_in_the_description(tmp_path: Path, source: Path,
                                                    keys: Keys) -> None:
    (source / "selfhost-release.json").write_text(json.dumps({**DESCRIPTION,
                                                              "version": "9"}))
    assert _out(_build(source, keys, tmp_path / "d.tar.gz"), tmp_path) == (
        2, "error: T/app/selfhost-release.json: version: selfhost release build writes it "
           "(remove it)")


def test_build_refuses_a_required_stop_outside_upgrade_from(tmp_path: Path, source: Path,
                                                            keys: Keys) -> None:
    (source / "selfhost-release.json").write_text(json.dumps({**DESCRIPTION,
                                                              "required_stops": ["0.5"]}))
    assert _out(_build(source, keys, tmp_path / "s.tar.gz"), tmp_path) == (
        2, "error: T/app/selfhost-release.json: required_stops: '0.5' is not in "
           "upgrade_from (a required stop is a version this release upgrades from)")


def test_verify_reports_a_refusal_as_json_too(tmp_path: Path, built: Path, keys: Keys) -> None:
    other = make_keys(tmp_path, "other")
    result = CliRunner().invoke(main, [
        "release", "verify", str(built), "--trusted-key", str(other.public), "--json"])
    report = json.loads(result.stdout)
    assert (result.exit_code, report["ok"], "which is not trusted" in report["error"]) == (
        1, False, True)
