"""`selfhost rotate` up to the hosts: which secrets, where new values come from,
the confirmation and an unfinished rotation. The runs on hosts are integration
tests (tests/integration/test_rotate.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from selfhost import secrets
from selfhost.cli.app import main
from selfhost.errors import Aborted
from selfhost.init import InitRequest, run_init
from selfhost.rotation import RotateOptions, pending_path, rotate

SUPPLIED = {"SELFHOST_OPENAI_API_KEY": "sk-rotate-test-aaaaaaaaaaaaaaaa",
            "SELFHOST_EMAIL_PASSWORD": "SG.rotate-test-bbbbbbbbbbbbbbbb",
            "SELFHOST_SENTRY_DSN": "https://0123456789abcdef@o1.ingest.us.sentry.io/1"}


def _profile(tmp_path: Path, key_file: Path, preset: str = "air-gapped") -> Path:
    output = tmp_path / f"{preset}.yaml"
    run_init(InitRequest(output=output, preset=preset, key_file=key_file, environ=SUPPLIED),
             None, None)
    return output


def _rotate(profile: Path, key_file: Path, *args: str,
            env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["rotate", str(profile), "--key-file", str(key_file),
                                     *args], env=env)


def test_nothing_named_is_refused_with_the_choices(tmp_path: Path, key_file: Path) -> None:
    result = _rotate(_profile(tmp_path, key_file), key_file, "--yes")
    assert result.exit_code == 2
    assert "--secret NAME, or pass --all" in result.output
    assert "app_secret_key, backup_key, cache_password, database_password" in result.output


def test_secret_and_all_together_are_refused(tmp_path: Path, key_file: Path) -> None:
    result = _rotate(_profile(tmp_path, key_file), key_file, "--all", "--secret",
                     "cache_password", "--yes")
    assert (result.exit_code, "not both" in result.output) == (2, True)


def test_the_ca_key_is_sent_to_its_own_command(tmp_path: Path, key_file: Path) -> None:
    result = _rotate(_profile(tmp_path, key_file), key_file, "--secret", "ca_key", "--yes")
    assert (result.exit_code, "selfhost certs rotate-ca" in result.output) == (2, True)


def test_a_secret_the_deployment_does_not_use_is_named(tmp_path: Path, key_file: Path) -> None:
    result = _rotate(_profile(tmp_path, key_file), key_file, "--secret", "openai_api_key",
                     "--yes")
    assert result.exit_code == 2
    assert "--secret openai_api_key: this profile's deployment uses no such secret" in \
        result.output


def test_a_third_party_key_never_comes_from_argv(tmp_path: Path, key_file: Path) -> None:
    profile = _profile(tmp_path, key_file, "us-openai")
    result = _rotate(profile, key_file, "--secret", "openai_api_key", "--yes")
    assert result.exit_code == 2
    assert "set SELFHOST_OPENAI_API_KEY to its new value" in result.output
    same = _rotate(profile, key_file, "--secret", "openai_api_key", "--yes", env=SUPPLIED)
    assert same.exit_code == 2
    assert "is the value stored now" in same.output
    assert not pending_path(profile).exists()


def test_without_a_terminal_or_yes_nothing_is_changed(tmp_path: Path, key_file: Path) -> None:
    profile = _profile(tmp_path, key_file)
    stored = secrets.secrets_path(profile).read_bytes()
    result = _rotate(profile, key_file, "--all")
    assert result.exit_code == 6
    assert "pass --yes" in result.output
    assert "database_password: the database role gets a new password" in result.output
    assert secrets.secrets_path(profile).read_bytes() == stored
    assert not pending_path(profile).exists()


def test_a_declined_confirmation_changes_nothing(tmp_path: Path, key_file: Path) -> None:
    profile = _profile(tmp_path, key_file)
    stored = secrets.secrets_path(profile).read_bytes()
    asked: list[str] = []

    def decline(question: str) -> bool:
        asked.append(question)
        return False

    with pytest.raises(Aborted, match="nothing was changed"):
        rotate(profile, RotateOptions(names=("cache_password",), key_file=key_file),
               confirm=decline)
    assert asked == ["Rotate these secrets now?"]
    assert secrets.secrets_path(profile).read_bytes() == stored
    assert not pending_path(profile).exists()


def test_an_unfinished_rotation_must_be_finished_first(tmp_path: Path, key_file: Path) -> None:
    profile = _profile(tmp_path, key_file)
    current = secrets.load_secrets(profile, key_file=key_file)
    pending = {**{n: current[n] for n in current}, "cache_password": "pending-value-123456"}
    pending_path(profile).write_bytes(secrets.seal(pending, key_file=key_file))
    pending_path(profile).chmod(0o600)
    result = _rotate(profile, key_file, "--secret", "database_password", "--yes")
    assert result.exit_code == 2
    assert f"{pending_path(profile)} holds an unfinished rotation of cache_password" in \
        result.output
    # Without --secret the unfinished rotation is what is resumed (and confirmed).
    resumed = _rotate(profile, key_file)
    assert resumed.exit_code == 6
    assert "Resume the rotation of" in resumed.output
    assert "cache_password: the cache accepts old and new" in resumed.output
    assert "database_password" not in resumed.output
