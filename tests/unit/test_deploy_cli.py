"""`selfhost deploy` and `selfhost demo` on the command line: options and refusals.

Runs that would reach a host are integration tests; these stop before Ansible.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from selfhost.cli.app import main
from selfhost.deploy.record import list_path, write_list
from selfhost.init import InitRequest, run_init
from selfhost.paths import preset_path
from selfhost.plan import plan
from selfhost.profile_io import load_profile
from selfhost.subprocessors.document import build_document
from selfhost.subprocessors.render import today

SUPPLIED = {"SELFHOST_OPENAI_API_KEY": "sk-cli-test-aaaaaaaaaaaaaaaa",
            "SELFHOST_EMAIL_PASSWORD": "SG.cli-test-bbbbbbbbbbbbbbbb",
            "SELFHOST_SENTRY_DSN": "https://0123456789abcdef@o1.ingest.us.sentry.io/1"}


def _deploy(*args: str) -> Result:
    return CliRunner().invoke(main, ["deploy", *args])


def _profile(tmp_path: Path, key_file: Path, preset: str,
             sets: tuple[str, ...] = ()) -> Path:
    output = tmp_path / f"{preset}.yaml"
    run_init(InitRequest(output=output, preset=preset, key_file=key_file, environ=SUPPLIED,
                         sets=sets), None, None)
    return output


def test_missing_profile_names_the_file(tmp_path: Path) -> None:
    result = _deploy(str(tmp_path / "nope.yaml"), "--yes")
    assert (result.exit_code, "nope.yaml:1: the file does not exist" in result.output) == (
        2, True)


def test_inventory_and_sandbox_together_are_refused(tmp_path: Path, key_file: Path) -> None:
    profile = _profile(tmp_path, key_file, "air-gapped")
    result = _deploy(str(profile), "--inventory", str(tmp_path / "h.yml"), "--sandbox", "x",
                     "--key-file", str(key_file))
    assert (result.exit_code, "give one" in result.output) == (2, True)


def test_unknown_engine_is_refused() -> None:
    result = _deploy("p.yaml", "--engine", "turbo")
    assert (result.exit_code, "'turbo' is not one of" in result.output) == (2, True)


def test_unknown_engine_in_the_environment_is_refused(tmp_path: Path, key_file: Path) -> None:
    profile = _profile(tmp_path, key_file, "air-gapped")
    result = CliRunner().invoke(main, ["deploy", str(profile), "--key-file", str(key_file)],
                                env={"SELFHOST_ANSIBLE_ENGINE": "turbo"})
    assert result.exit_code == 2


def test_unknown_sandbox_says_how_to_create_it(tmp_path: Path, key_file: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELFHOST_SANDBOX_DIR", str(tmp_path / "sandboxes"))
    profile = _profile(tmp_path, key_file, "air-gapped")
    result = _deploy(str(profile), "--sandbox", "nosuch", "--key-file", str(key_file))
    assert (result.exit_code, "selfhost sandbox up --name nosuch" in result.output) == (2, True)


def test_presets_documentation_address_is_refused(tmp_path: Path, key_file: Path) -> None:
    profile = _profile(tmp_path, key_file, "air-gapped")
    result = _deploy(str(profile), "--key-file", str(key_file), "--yes")
    assert (result.exit_code, "hosts.app.0.address: 192.0.2.10 is a documentation address"
            in result.output) == (2, True)


def test_inventory_with_other_host_names_is_refused(tmp_path: Path, key_file: Path) -> None:
    profile = _profile(tmp_path, key_file, "air-gapped")
    hosts = tmp_path / "hosts.yml"
    hosts.write_text("all:\n  hosts:\n    web1: {ansible_host: 10.0.0.1}\n")
    result = _deploy(str(profile), "--inventory", str(hosts), "--key-file", str(key_file))
    assert (result.exit_code, "missing the profile's host(s) chat1" in result.output) == (
        2, True)


def test_wrong_key_file_is_a_secrets_error(tmp_path: Path, key_file: Path) -> None:
    # a real (loopback) address: the presets' documentation addresses stop earlier
    profile = _profile(tmp_path, key_file, "air-gapped", ("hosts.app.0.address=127.0.0.1",))
    other = tmp_path / "other.key"
    other.write_bytes(b"x" * 32)
    other.chmod(0o600)
    result = _deploy(str(profile), "--key-file", str(other))
    assert (result.exit_code, "wrong key file" in result.output) == (5, True)


def test_list_change_without_terminal_or_yes_is_aborted(tmp_path: Path, key_file: Path) -> None:
    profile = _profile(tmp_path, key_file, "us-openai", ("hosts.app.0.address=127.0.0.1",))
    the_plan = plan(load_profile(profile))
    previous = build_document(plan(load_profile(preset_path("air-gapped"))), on=today())
    write_list(list_path(profile, the_plan.customer.id), previous)
    result = _deploy(str(profile), "--key-file", str(key_file))
    assert (result.exit_code, "changes the subprocessor list" in result.output,
            "+ openai" in result.output) == (6, True, True)


def test_demo_rejects_an_unknown_preset() -> None:
    result = CliRunner().invoke(main, ["demo", "--preset", "nosuch"])
    assert (result.exit_code, "'nosuch' is not one of" in result.output) == (2, True)


def test_demo_rejects_an_unknown_release() -> None:
    result = CliRunner().invoke(main, ["demo", "--release", "sid"])
    assert (result.exit_code, "'sid' is not one of" in result.output) == (2, True)


def test_demo_puts_the_presets_hosts_on_the_guests_in_plan_order() -> None:
    from selfhost.workflows.demo import address_sets

    assert address_sets("split", ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]) == (
        "hosts.ssh_user=root", "hosts.app.0.address=10.0.0.2", "hosts.app.1.address=10.0.0.3",
        "hosts.database.address=10.0.0.4", "hosts.cache.address=10.0.0.5")
