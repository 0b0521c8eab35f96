"""Secrets inputs: file modes, passphrase strength, KDF limits, colliding output names."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from selfhost import secrets
from selfhost.cli import main

SETS = ("--preset", "air-gapped", "--set", "hosts.app.0.address=192.0.2.10")


def _init(output: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["init", "--output", str(output), *SETS, *args], env=env)


def test_a_key_file_others_can_read_is_refused_with_the_chmod(tmp_path: Path,
                                                             key_file: Path) -> None:
    key_file.chmod(0o644)
    result = _init(tmp_path / "acme.yaml", "--key-file", str(key_file))
    assert (result.exit_code, result.output.strip()) == (
        2, f"error: the key file {key_file} is readable by others (mode 0644); protect it "
           f"with: chmod 600 {key_file}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secrets.key"]


def test_a_secrets_file_others_can_read_is_refused_with_the_chmod(tmp_path: Path,
                                                                 key_file: Path) -> None:
    output = tmp_path / "acme.yaml"
    assert _init(output, "--key-file", str(key_file)).exit_code == 0
    stored = secrets.secrets_path(output)
    stored.chmod(0o640)
    before = stored.read_bytes()
    result = _init(output, "--key-file", str(key_file), "--force")
    assert (result.exit_code, result.output.strip()) == (
        2, f"error: the secrets file {stored} is readable by others (mode 0640); protect it "
           f"with: chmod 600 {stored}")
    assert stored.read_bytes() == before


def test_init_refuses_a_short_passphrase(tmp_path: Path) -> None:
    result = _init(tmp_path / "acme.yaml", env={"SELFHOST_PASSPHRASE": "elevenchars"})
    assert (result.exit_code, result.output.strip()) == (
        2, "error: the passphrase has 11 characters; a new secrets file needs at least 12 "
           "(choose a longer one, or pass --key-file)")
    assert list(tmp_path.iterdir()) == []


def test_init_accepts_a_twelve_character_passphrase(tmp_path: Path) -> None:
    result = _init(tmp_path / "acme.yaml", env={"SELFHOST_PASSPHRASE": "twelve-chars"})
    assert result.exit_code == 0, result.output


def test_kdf_parameters_above_what_selfhost_writes_are_refused_before_deriving(
        tmp_path: Path) -> None:
    output = tmp_path / "acme.yaml"
    env = {"SELFHOST_PASSPHRASE": "a long passphrase"}
    assert _init(output, env=env).exit_code == 0
    stored = secrets.secrets_path(output)
    data = bytearray(stored.read_bytes())
    data[10] = 18  # scrypt log2(n): twice the memory and time of what seal writes
    stored.write_bytes(bytes(data))
    result = _init(output, "--force", env=env)
    assert (result.exit_code, result.output.strip()) == (
        5, f"error: {stored}: its scrypt parameters (log2 n=18, r=8, p=1) exceed what "
           "selfhost writes (log2 n=17, r=8, p=1), so it was not written by selfhost "
           "(restore it from a backup); nothing was derived")


def test_output_that_is_its_own_secrets_file_is_refused(tmp_path: Path,
                                                        key_file: Path) -> None:
    output = tmp_path / "x.secrets"
    result = _init(output, "--key-file", str(key_file))
    assert (result.exit_code, result.output.strip()) == (
        2, f"error: --output {output}: that is the name of the profile's own secrets file, "
           f"so one would overwrite the other (name the profile {tmp_path / 'x.yaml'})")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secrets.key"]
