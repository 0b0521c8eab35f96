"""selfhost init on every path: wizard, flags, answers file, preset, no terminal."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from selfhost import secrets
from selfhost.answers import parse_set
from selfhost.cli import main
from selfhost.errors import InvalidInput
from selfhost.init import InitRequest, collect
from selfhost.profile_io import load_profile

OPENAI_KEY = "sk-test-0000-never-printed"

REQUIRED_SETS = ["customer.name=ACME GmbH", "customer.contact_email=dpo@acme.example",
                 "hosts.app.0.address=192.0.2.10", "tls.domain=chat.acme.example"]


def _init(tmp_path: Path, key_file: Path, *args: str, input: str | None = None,
          env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        main, ["init", "--output", str(tmp_path / "acme.yaml"), "--key-file", str(key_file),
               *args], input=input, env=env)


def _sets(*items: str) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


# -- the wizard ---------------------------------------------------------------------

WIZARD = [
    "ACME GmbH",          # customer.name
    "",                   # customer.id (default acme-gmbh)
    "not-an-email",       # customer.contact_email: re-asked
    "dpo@acme.example",
    "EU",                 # residency
    "",                   # topology: all-in-one
    "",                   # ssh user: root
    "",                   # host name: chat1
    "192.0.2.10",         # host address
    "",                   # database.mode: local
    "",                   # cache.mode: local
    "openai",             # ai.provider
    "gpt-4o, gpt-4o-mini",  # ai.models
    "y",                  # international transfer acknowledged
    "",                   # tls.mode: self-signed
    "chat.acme.example",  # tls.domain
    "",                   # email.provider: none
    "",                   # monitoring: none
    "",                   # cdn: none
    "",                   # backups: yes
    "",                   # retention: 14
    OPENAI_KEY,           # openai_api_key (hidden)
]


@pytest.fixture
def wizard_result(tmp_path: Path, key_file: Path) -> Result:
    return _init(tmp_path, key_file, "--interactive", input="\n".join(WIZARD) + "\n")


def test_wizard_exits_0(wizard_result: Result) -> None:
    assert (wizard_result.exit_code, "Wrote" in wizard_result.output) == (0, True)


def test_wizard_writes_a_valid_profile(wizard_result: Result, tmp_path: Path) -> None:
    profile = load_profile(tmp_path / "acme.yaml")
    assert (profile.customer.id, profile.ai.models,
            profile.ai.international_transfer_acknowledged) == (
        "acme-gmbh", ["gpt-4o", "gpt-4o-mini"], True)


def test_wizard_reasks_an_invalid_answer(wizard_result: Result) -> None:
    assert "'not-an-email' is not a valid e-mail address" in wizard_result.output


def test_wizard_never_echoes_the_hidden_key(wizard_result: Result) -> None:
    assert OPENAI_KEY not in wizard_result.output


def test_wizard_stores_the_typed_key(wizard_result: Result, tmp_path: Path,
                                     key_file: Path) -> None:
    stored = secrets.load_secrets(tmp_path / "acme.yaml", key_file=key_file)
    assert stored["openai_api_key"] == OPENAI_KEY


def test_wizard_asks_split_hosts(tmp_path: Path, key_file: Path) -> None:
    answers = ["ACME", "", "dpo@acme.example", "DE", "split", "", "2", "", "192.0.2.11",
               "", "192.0.2.12", "", "", "192.0.2.21", "", "", "192.0.2.31", "", "",
               "chat.acme.example", "", "", "", "", ""]
    result = _init(tmp_path, key_file, "--interactive", input="\n".join(answers) + "\n")
    profile = load_profile(tmp_path / "acme.yaml")
    assert (result.exit_code, [h.name for h in profile.hosts.app],
            profile.hosts.database and profile.hosts.database.address) == (
        0, ["app1", "app2"], "192.0.2.21")


# -- flags, answers file, presets --------------------------------------------------

def test_flags_alone_make_a_profile(tmp_path: Path, key_file: Path) -> None:
    result = _init(tmp_path, key_file, "--non-interactive", *_sets(*REQUIRED_SETS))
    assert (result.exit_code, load_profile(tmp_path / "acme.yaml").customer.id) == (
        0, "acme-gmbh")


def test_answers_file(tmp_path: Path, key_file: Path) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text("customer:\n  name: ACME\n  contact_email: dpo@acme.example\n"
                       "hosts:\n  app:\n    - address: 192.0.2.10\n"
                       "tls:\n  domain: chat.acme.example\n")
    result = _init(tmp_path, key_file, "--non-interactive", "--answers", str(answers))
    assert (result.exit_code, load_profile(tmp_path / "acme.yaml").hosts.app[0].name) == (
        0, "chat1")


PRESET_IDS = {"air-gapped": "example-air-gapped", "eu-anthropic": "example-eu",
              "external-db": "example-external", "split": "example-split",
              "us-openai": "example-us"}


@pytest.mark.parametrize(("preset", "customer_id"), PRESET_IDS.items())
def test_every_preset_initialises(tmp_path: Path, key_file: Path, preset: str,
                                  customer_id: str) -> None:
    env = {"SELFHOST_OPENAI_API_KEY": "sk-o", "SELFHOST_ANTHROPIC_API_KEY": "sk-a",
           "SELFHOST_EMAIL_PASSWORD": "pw", "SELFHOST_SENTRY_DSN": "https://k@o.sentry.io/1",
           "SELFHOST_DATABASE_PASSWORD": "db-pw", "SELFHOST_CACHE_PASSWORD": "cache-pw"}
    result = _init(tmp_path, key_file, "--non-interactive", "--preset", preset, env=env)
    assert (result.exit_code, load_profile(tmp_path / "acme.yaml").customer.id) == (
        0, customer_id)


def test_precedence_set_over_answers_over_preset(tmp_path: Path) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text("customer:\n  name: From Answers\n  residency: FR\n")
    merged, _ = collect(InitRequest(output=tmp_path / "p.yaml", preset="air-gapped",
                                    answers_file=answers,
                                    sets=("customer.name=From Flag",)))
    assert (merged["customer"]["name"], merged["customer"]["residency"],
            merged["customer"]["id"]) == ("From Flag", "FR", "example-air-gapped")


SET_VALUES: list[tuple[str, tuple[str, Any]]] = [
    ("ai.models=[gpt-4o, gpt-4o-mini]", ("ai.models", ["gpt-4o", "gpt-4o-mini"])),
    ("hosts.app.0.ssh_port=2222", ("hosts.app.0.ssh_port", 2222)),
    ("backups.enabled=false", ("backups.enabled", False)),
    ("customer.name=ACME = Co", ("customer.name", "ACME = Co")),
    ("tls.min_version='1.2'", ("tls.min_version", "1.2")),
]


@pytest.mark.parametrize(("item", "expected"), SET_VALUES)
def test_set_values_are_yaml(item: str, expected: tuple[str, Any]) -> None:
    assert parse_set(item) == expected


def test_set_indexes_host_lists(tmp_path: Path, key_file: Path) -> None:
    result = _init(tmp_path, key_file, "--non-interactive", "--preset", "split",
                   *_sets("hosts.app.1.address=10.0.0.5"))
    profile = load_profile(tmp_path / "acme.yaml")
    assert (result.exit_code, profile.hosts.app[1].name, profile.hosts.app[1].address) == (
        0, "app2", "10.0.0.5")


SECRET_FLAGS = [
    ("openai_api_key=sk-x", "SELFHOST_OPENAI_API_KEY"),
    ("ai.openai_api_key=sk-x", "SELFHOST_OPENAI_API_KEY"),
    ("email.password=hunter2", "SELFHOST_EMAIL_PASSWORD"),
    ("database.password=x", "SELFHOST_DATABASE_PASSWORD"),
    ("ai.token=x", "such as SELFHOST_OPENAI_API_KEY or SELFHOST_EMAIL_PASSWORD"),
    ("monitoring.sentry_dsn=https://k@o.ingest.sentry.io/1", "SELFHOST_SENTRY_DSN"),
]


@pytest.mark.parametrize(("item", "variable"), SECRET_FLAGS)
def test_set_of_a_secret_is_refused_pointing_at_the_variable(item: str, variable: str) -> None:
    with pytest.raises(InvalidInput, match=variable):
        parse_set(item)


def test_secret_in_answers_file_is_refused(tmp_path: Path, key_file: Path) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text("ai:\n  provider: openai\n  api_key: sk-secret-in-file\n")
    result = _init(tmp_path, key_file, "--non-interactive", "--answers", str(answers))
    assert (result.exit_code, "secrets are not accepted here" in result.output,
            "sk-secret-in-file" in result.output) == (2, True, False)


def test_set_value_of_refused_secret_is_not_echoed(tmp_path: Path, key_file: Path) -> None:
    result = _init(tmp_path, key_file, *_sets("openai_api_key=sk-do-not-print"))
    assert (result.exit_code, "sk-do-not-print" in result.output) == (2, False)


# -- without a terminal -------------------------------------------------------------

def test_no_terminal_names_each_missing_key_and_flag(tmp_path: Path, key_file: Path) -> None:
    result = _init(tmp_path, key_file, *_sets("customer.name=ACME"), input="")
    missing = [line.split(":")[0] for line in result.output.splitlines()
               if "no answer (pass --set" in line]
    assert (result.exit_code, missing) == (2, ["customer.contact_email",
                                               "hosts.app.0.address", "tls.domain"])


def test_no_terminal_message_names_the_flag(tmp_path: Path, key_file: Path) -> None:
    result = _init(tmp_path, key_file, "--non-interactive")
    assert ("tls.domain: no answer (pass --set tls.domain=VALUE or put it in the --answers "
            "file)") in result.output


def test_no_terminal_missing_third_party_key_names_the_variable(tmp_path: Path,
                                                                key_file: Path) -> None:
    result = _init(tmp_path, key_file, "--non-interactive", "--preset", "us-openai",
                   env={"SELFHOST_EMAIL_PASSWORD": "pw", "SELFHOST_SENTRY_DSN": "d"})
    assert (result.exit_code, "openai_api_key: this third-party secret is not supplied (set "
            "the environment variable SELFHOST_OPENAI_API_KEY)" in result.output) == (2, True)


def test_no_passphrase_without_terminal_is_a_secrets_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["init", "--output", str(tmp_path / "a.yaml"),
                                       "--preset", "air-gapped", "--non-interactive"])
    assert (result.exit_code, "set SELFHOST_PASSPHRASE" in result.output) == (5, True)


# -- the same validation on every path ---------------------------------------------

def test_invalid_flag_value_is_reported_at_the_flag(tmp_path: Path, key_file: Path) -> None:
    result = _init(tmp_path, key_file, "--preset", "air-gapped",
                   *_sets("hosts.app.0.ssh_port=0"))
    assert (result.exit_code, "--set hosts.app.0.ssh_port: not a port number" in
            result.output) == (2, True)


def test_invalid_answers_file_is_reported_with_its_line(tmp_path: Path,
                                                        key_file: Path) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text("customer:\n  residency: Atlantis\n")
    result = _init(tmp_path, key_file, "--preset", "air-gapped", "--answers", str(answers))
    assert f"{answers}:2: customer.residency: 'Atlantis' is not a residency code" in (
        result.output)


def test_cross_field_rule_runs_on_presets_too(tmp_path: Path, key_file: Path) -> None:
    result = _init(tmp_path, key_file, "--preset", "eu-anthropic",
                   *_sets("ai.international_transfer_acknowledged=false"),
                   env={"SELFHOST_ANTHROPIC_API_KEY": "sk-a"})
    assert (result.exit_code, "--set ai.international_transfer_acknowledged: residency EU "
            "with the US provider anthropic" in result.output) == (2, True)


def test_unknown_preset(tmp_path: Path, key_file: Path) -> None:
    result = _init(tmp_path, key_file, "--preset", "nope")
    assert (result.exit_code, "choose one of: air-gapped" in result.output) == (2, True)


# -- writing ------------------------------------------------------------------------

def test_secrets_file_is_0600(tmp_path: Path, key_file: Path) -> None:
    _init(tmp_path, key_file, "--preset", "air-gapped")
    mode = stat.S_IMODE((tmp_path / "acme.secrets").stat().st_mode)
    assert mode == 0o600


def test_generated_secrets_are_stored(tmp_path: Path, key_file: Path) -> None:
    _init(tmp_path, key_file, "--preset", "air-gapped")
    assert secrets.stored_names(tmp_path / "acme.yaml") == [
        "app_secret_key", "backup_key", "ca_key", "cache_password", "database_password"]


def test_existing_profile_needs_force(tmp_path: Path, key_file: Path) -> None:
    _init(tmp_path, key_file, "--preset", "air-gapped")
    result = _init(tmp_path, key_file, "--preset", "air-gapped")
    assert (result.exit_code, "pass --force" in result.output) == (2, True)


def test_force_keeps_existing_secrets(tmp_path: Path, key_file: Path) -> None:
    _init(tmp_path, key_file, "--preset", "air-gapped")
    before = dict(secrets.load_secrets(tmp_path / "acme.yaml", key_file=key_file))
    _init(tmp_path, key_file, "--preset", "air-gapped", "--force",
          *_sets("customer.name=Renamed"))
    after = dict(secrets.load_secrets(tmp_path / "acme.yaml", key_file=key_file))
    assert after == before


def test_rerun_adds_missing_and_drops_unneeded_secrets(tmp_path: Path,
                                                       key_file: Path) -> None:
    _init(tmp_path, key_file, "--preset", "us-openai",
          env={"SELFHOST_OPENAI_API_KEY": "sk-o", "SELFHOST_EMAIL_PASSWORD": "pw",
               "SELFHOST_SENTRY_DSN": "d"})
    _init(tmp_path, key_file, "--preset", "us-openai", "--force",
          *_sets("ai.provider=disabled", "ai.models=[]", "email.provider=none",
                 "monitoring.provider=none", "backups.encrypted=false"))
    assert secrets.stored_names(tmp_path / "acme.yaml") == [
        "app_secret_key", "ca_key", "cache_password", "database_password"]


def test_failure_leaves_nothing_written(tmp_path: Path, key_file: Path) -> None:
    result = _init(tmp_path, key_file, "--preset", "us-openai")  # third-party keys missing
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p != key_file)
    assert (result.exit_code, leftovers) == (2, [])


def test_failure_on_rerun_keeps_old_files(tmp_path: Path, key_file: Path) -> None:
    _init(tmp_path, key_file, "--preset", "air-gapped")
    before = (tmp_path / "acme.yaml").read_bytes(), (tmp_path / "acme.secrets").read_bytes()
    _init(tmp_path, key_file, "--preset", "us-openai", "--force")
    after = (tmp_path / "acme.yaml").read_bytes(), (tmp_path / "acme.secrets").read_bytes()
    assert after == before


def test_wrong_key_on_rerun_exits_5(tmp_path: Path, key_file: Path) -> None:
    _init(tmp_path, key_file, "--preset", "air-gapped")
    other = tmp_path / "other.key"
    other.write_bytes(b"o" * 32)
    other.chmod(0o600)
    result = _init(tmp_path, other, "--preset", "air-gapped", "--force")
    assert (result.exit_code, "wrong key file" in result.output) == (5, True)


def test_passphrase_from_environment(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["init", "--output", str(tmp_path / "a.yaml"), "--preset", "air-gapped"],
        env={"SELFHOST_PASSPHRASE": "a long passphrase"})
    stored = secrets.load_secrets(tmp_path / "a.yaml", passphrase="a long passphrase")
    assert (result.exit_code, len(stored)) == (0, 5)


def test_supplied_secret_values_are_not_printed(tmp_path: Path, key_file: Path) -> None:
    result = _init(tmp_path, key_file, "--preset", "us-openai",
                   env={"SELFHOST_OPENAI_API_KEY": OPENAI_KEY, "SELFHOST_EMAIL_PASSWORD": "pw",
                        "SELFHOST_SENTRY_DSN": "d"})
    assert (result.exit_code, OPENAI_KEY in result.output,
            OPENAI_KEY in (tmp_path / "acme.yaml").read_text()) == (0, False, False)
