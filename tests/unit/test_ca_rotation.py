"""`selfhost certs rotate-ca` up to the hosts: the trust bundle of each phase, what the
secrets file holds between phases, the confirmation and the command line. The runs
on hosts are tests/integration/test_rotate_ca.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509

from selfhost import ca_rotation, pki, secrets
from selfhost.cli.app import main
from selfhost.errors import Aborted, DeployFailed, SelfhostError
from selfhost.init import InitRequest, run_init
from selfhost.paths import preset_path
from selfhost.plan import plan
from selfhost.profile_io import load_profile

SUPPLIED = {"SELFHOST_OPENAI_API_KEY": "sk-rotate-test-aaaaaaaaaaaaaaaa",
            "SELFHOST_EMAIL_PASSWORD": "SG.rotate-test-bbbbbbbbbbbbbbbb",
            "SELFHOST_SENTRY_DSN": "https://0123456789abcdef@o1.ingest.us.sentry.io/1"}


def _certs(pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode())


def test_each_phase_trusts_the_right_cas_and_keeps_their_bytes(tmp_path: Path) -> None:
    the_plan = plan(load_profile(preset_path("split")))
    old, new = pki.generate_ca_key(), pki.generate_ca_key()
    before = pki.issue(the_plan, old, tmp_path)
    added = pki.issue(the_plan, old, tmp_path, new)
    old_ca, new_ca = _certs(added.ca_cert)
    assert old_ca == _certs(before.ca_cert)[0]
    # add: the bundle trusts both, the servers keep their certificates
    assert added.host_certs == before.host_certs
    switched = pki.issue(the_plan, new, tmp_path, old)
    assert _certs(switched.ca_cert) == [new_ca, old_ca]
    for name in ("app1", "db1", "cache1"):
        _certs(switched.host_certs[name])[0].verify_directly_issued_by(new_ca)
        assert switched.host_keys[name] != before.host_keys[name]
    # a redeploy in the middle hands the hosts the very same bytes
    assert pki.issue(the_plan, new, tmp_path, old) == switched
    pki.forget_other_cas(tmp_path)
    finished = pki.issue(the_plan, new, tmp_path)
    assert _certs(finished.ca_cert) == [new_ca]
    assert finished.host_certs == switched.host_certs
    assert sorted(p.name for p in tmp_path.rglob("*.crt") if "hosts" not in p.parts) == [
        "ca.crt"]


def test_the_secrets_file_names_where_the_rotation_stands() -> None:
    start = {"ca_key": "OLD", "app_secret_key": "s"}
    assert ca_rotation.where(start) == "add"
    added = {**start, ca_rotation.NEXT: "NEW"}
    assert ca_rotation.where(added) == "switch"
    switched = ca_rotation.after("switch", added)
    assert switched == {"ca_key": "NEW", ca_rotation.PREVIOUS: "OLD", "app_secret_key": "s"}
    assert ca_rotation.where(switched) == "finish"
    finished = ca_rotation.after("finish", switched)
    assert finished == {"ca_key": "NEW", "app_secret_key": "s"}
    assert ca_rotation.where(finished) == "add"


def _profile(tmp_path: Path, key_file: Path, preset: str = "us-openai") -> Path:
    output = tmp_path / f"{preset}.yaml"
    run_init(InitRequest(output=output, preset=preset, key_file=key_file, environ=SUPPLIED),
             None, None)
    return output


def test_declining_changes_nothing(tmp_path: Path, key_file: Path) -> None:
    profile = _profile(tmp_path, key_file)
    stored = secrets.secrets_path(profile).read_bytes()
    options = ca_rotation.CaRotateOptions(key_file=key_file)
    lines: list[str] = []
    with pytest.raises(Aborted, match="nothing was changed"):
        ca_rotation.rotate_ca(profile, options, confirm=lambda _q: False, say=lines.append)
    assert any(line.startswith("  add: every host trusts the old and the new CA")
               for line in lines)
    assert secrets.secrets_path(profile).read_bytes() == stored
    assert not ca_rotation.pending_path(profile).exists()


def test_cli_without_terminal_or_yes_exits_6(tmp_path: Path, key_file: Path) -> None:
    profile = _profile(tmp_path, key_file)
    result = CliRunner().invoke(main, ["certs", "rotate-ca", str(profile), "--key-file",
                                       str(key_file)])
    assert result.exit_code == 6, result.output
    assert "pass --yes" in result.output


def test_certs_profile_still_lists(tmp_path: Path) -> None:
    # `certs PROFILE` is `certs list PROFILE`: a missing profile is named by the list
    # command's own argument check.
    result = CliRunner().invoke(main, ["certs", str(tmp_path / "absent.yaml")])
    listed = CliRunner().invoke(main, ["certs", "list", str(tmp_path / "absent.yaml")])
    assert result.exit_code == listed.exit_code == 2
    assert "absent.yaml" in result.output
    assert "No such command" not in result.output


def test_a_cut_rotation_resumes_with_the_same_new_key(tmp_path: Path, key_file: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    profile = _profile(tmp_path, key_file)
    old = secrets.load_secrets(profile, key_file=key_file)["ca_key"]
    handed: list[dict[str, str]] = []

    def failing(*_a: object, goal: dict[str, str], **_k: object) -> dict[str, object]:
        handed.append(dict(goal))
        raise DeployFailed("chat1: task X failed")

    monkeypatch.setattr(ca_rotation, "_run", failing)
    options = ca_rotation.CaRotateOptions(key_file=key_file, yes=True)
    with pytest.raises(SelfhostError, match="stopped in its add phase") as caught:
        ca_rotation.rotate_ca(profile, options)
    assert caught.value.exit_code == 4
    # nothing stored before the hosts accepted the new CA
    assert sorted(secrets.load_secrets(profile, key_file=key_file)) == sorted(
        n for n in handed[0] if n != ca_rotation.NEXT)
    assert ca_rotation.pending_path(profile).stat().st_mode & 0o777 == 0o600
    monkeypatch.setattr(ca_rotation, "_run", lambda *_a, goal, **_k: handed.append(
        dict(goal)) or {})
    result = ca_rotation.rotate_ca(profile, options)
    assert (result.phases, result.resumed) == (["add", "switch", "finish"], True)
    new = handed[0][ca_rotation.NEXT]
    assert handed[1][ca_rotation.NEXT] == new
    assert (handed[2]["ca_key"], handed[2][ca_rotation.PREVIOUS]) == (new, old)
    assert handed[3]["ca_key"] == new
    assert ca_rotation.PREVIOUS not in handed[3]
    stored = secrets.load_secrets(profile, key_file=key_file)
    assert (stored["ca_key"], sorted(stored).count("ca_key_previous")) == (new, 0)
    assert not ca_rotation.pending_path(profile).exists()
