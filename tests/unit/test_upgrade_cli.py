"""`selfhost upgrade` refuses a release that is not genuine, or a profile whose
subprocessors differ from the list deploy recorded, before any host, sandbox or secret is
touched (exit 2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from release_support import make_keys, members, probe_release, write_tarball
from selfhost.cli import main
from selfhost.deploy import record
from selfhost.init import InitRequest, run_init
from selfhost.plan import plan
from selfhost.profile_io import load_profile
from selfhost.subprocessors.document import build_document
from selfhost.subprocessors.render import today
from selfhost.upgrade import service


def _must_not_run(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("a playbook was run")


@pytest.mark.parametrize("tamper", ["untrusted", "payload"])
def test_a_bad_release_is_refused_before_anything(
        tmp_path: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch, tamper: str) -> None:
    keys = make_keys(tmp_path)
    (tmp_path / "v1").mkdir()
    shutil.copyfile(probe_release(tmp_path / "v1", "v1", keys), tmp_path / "release.tar.gz")
    profile = tmp_path / "p.yaml"
    run_init(InitRequest(output=profile, preset="air-gapped", key_file=key_file, environ={},
                         sets=("hosts.app.0.address=127.0.0.1", "app.release=release.tar.gz",
                               f"app.release_keys=[{keys.public.name}]")), None, None)
    (tmp_path / "v2").mkdir()
    signer = make_keys(tmp_path, "stranger") if tamper == "untrusted" else keys
    entries = members(probe_release(tmp_path / "v2", "v2", signer))
    if tamper == "payload":
        payload = bytearray(entries[2][1])
        payload[payload.index(b"APP_NAME")] ^= 1
        entries[2] = ("payload.tar", bytes(payload))
    candidate = write_tarball(tmp_path / "v2.tar.gz", entries)
    monkeypatch.setattr(service, "run_playbook", _must_not_run)
    monkeypatch.setattr(service, "prepare", _must_not_run)
    result = CliRunner().invoke(main, ["upgrade", str(profile), "--release", str(candidate),
                                       "--sandbox", "no-such-sandbox",
                                       "--key-file", str(key_file)])
    expected = {"untrusted": "which is not trusted",
                "payload": "payload.tar does not match the sha256 and size the signed "
                           "manifest states"}[tamper]
    assert (result.exit_code, expected in result.output, str(candidate) in result.output,
            "Traceback" in result.output) == (2, True, True, False), result.output


def test_an_upgrade_whose_profile_changes_the_subprocessors_is_refused_before_anything(
        tmp_path: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = make_keys(tmp_path)
    for kind in ("v1", "v2"):
        (tmp_path / kind).mkdir()
    shutil.copyfile(probe_release(tmp_path / "v1", "v1", keys), tmp_path / "release.tar.gz")
    candidate = probe_release(tmp_path / "v2", "v2", keys)
    profile = tmp_path / "p.yaml"
    run_init(InitRequest(output=profile, preset="air-gapped", key_file=key_file, environ={},
                         sets=("hosts.app.0.address=127.0.0.1", "app.release=release.tar.gz",
                               f"app.release_keys=[{keys.public.name}]")), None, None)
    # the list deploy recorded named Sentry; the profile on disk no longer does
    loaded = load_profile(profile)
    deployed = loaded.model_copy(update={"monitoring": loaded.monitoring.model_copy(
        update={"provider": "sentry", "sentry_region": "de"})})
    record.write_list(record.list_path(profile, loaded.customer.id),
                      build_document(plan(deployed), on=today()))
    monkeypatch.setattr(service, "run_playbook", _must_not_run)
    monkeypatch.setattr(service, "prepare", _must_not_run)
    result = CliRunner().invoke(main, ["upgrade", str(profile), "--release", str(candidate),
                                       "--sandbox", "no-such-sandbox",
                                       "--key-file", str(key_file)])
    assert (result.exit_code, "- sentry (Sentry): removed" in result.output,
            "run `selfhost deploy` first" in result.output,
            "Traceback" in result.output) == (2, True, True, False), result.output
