"""Profile files: YAML safety, FILE:LINE rendering, and the checks against disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from input_support import PROFILE

from selfhost import secrets
from selfhost.errors import ValidationFailed
from selfhost.models import Profile
from selfhost.paths import preset_names, preset_path
from selfhost.profile_io import check_profile, dump_profile, load_profile, parse_yaml_mapping

VALID = PROFILE

BOMB = "\n".join(
    ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]"
       for i in range(8)]
) + "\n"


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    try:
        load_profile(path)
    except ValidationFailed as exc:
        return exc.problems
    return []


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_validates(name: str) -> None:
    assert isinstance(load_profile(preset_path(name)), Profile)


def test_presets_are_the_five_documented() -> None:
    assert preset_names() == ["air-gapped", "eu-anthropic", "external-db", "split",
                              "us-openai"]


BAD_FILES: list[tuple[str, str, str]] = [
    ("list document", "- a\n- b\n", "p.yaml:1: the document is a list, not a mapping"),
    ("scalar document", "hello\n", "not a mapping"),
    ("empty document", "", "the document is empty"),
    ("syntax error", "customer: [\n", "p.yaml:2: not valid YAML"),
    ("duplicate key", VALID.replace("  id: acme\n", "  id: acme\n  id: other\n"),
     "p.yaml:4: customer.id: duplicate key"),
    ("duplicate key in a list item", VALID.replace(
        "      address: 192.0.2.10\n", "      address: 192.0.2.10\n      name: x\n"),
     "p.yaml:10: hosts.app.0.name: duplicate key"),
    ("alias bomb", BOMB, "expands to more than"),
    ("recursive alias", "a: &a [*a]\n", "p.yaml:1: an alias refers to a node that contains it"),
    ("unknown key with line and suggestion", VALID + "emial:\n  provider: none\n",
     "p.yaml:12: emial: unknown key (did you mean 'email'"),
    ("wrong type with line", VALID + "backups:\n  retention_days: many\n",
     "p.yaml:13: backups.retention_days: Input should be a valid integer"),
    ("missing field at its parent's line", VALID.replace("  id: acme\n", ""),
     "p.yaml:1: customer.id: required field is missing"),
    ("cross-field rule at the nearest line", VALID + "ai:\n  provider: openai\n",
     "p.yaml:12: ai.international_transfer_acknowledged:"),
    ("provided TLS without readable files", VALID.replace(
        "  domain: chat.acme.example\n",
        "  domain: chat.acme.example\n  mode: provided\n  cert_file: nope.crt\n"
        "  key_file: nope.key\n"), "p.yaml:13: tls.cert_file: cannot read"),
]


@pytest.mark.parametrize(("text", "expected"),
                         [pytest.param(t, e, id=i) for i, t, e in BAD_FILES])
def test_bad_file_is_reported_with_file_and_line(tmp_path: Path, text: str,
                                                 expected: str) -> None:
    assert any(expected in line for line in _problems(tmp_path, text))


def test_unknown_key_line_is_rendered_exactly(tmp_path: Path) -> None:
    text = VALID.replace("  residency: DE\n", "  residency: DE\n  nmae: x\n")
    assert _problems(tmp_path, text) == [
        f"{tmp_path / 'p.yaml'}:6: customer.nmae: unknown key (did you mean 'name'?)"]


def test_missing_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="does not exist"):
        load_profile(tmp_path / "absent.yaml")


def test_oversized_file_is_refused_before_parsing() -> None:
    with pytest.raises(ValidationFailed, match="larger than"):
        parse_yaml_mapping("a: " + "x" * 1_000_001, "big.yaml")


def test_ai_key_stored_while_ai_disabled_is_found_without_passphrase(
        tmp_path: Path, key_file: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(VALID)
    secrets.secrets_path(profile).write_bytes(
        secrets.seal({"openai_api_key": "sk-test-value"}, key_file=key_file))
    secrets.secrets_path(profile).chmod(0o600)
    check = check_profile(profile)
    assert [f.render() for f in check.errors] == [
        f"{profile}:1: ai.provider: AI is disabled but {tmp_path / 'p.secrets'} holds "
        "openai_api_key (re-run selfhost init --force to drop it, or change ai.provider)"]


def test_other_providers_key_is_found(tmp_path: Path, key_file: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(VALID.replace("DE", "US") + "ai:\n  provider: anthropic\n")
    secrets.secrets_path(profile).write_bytes(secrets.seal(
        {"openai_api_key": "sk-a", "anthropic_api_key": "sk-b"}, key_file=key_file))
    secrets.secrets_path(profile).chmod(0o600)
    assert [f.path for f in check_profile(profile).errors] == ["ai.provider"]


def test_dump_round_trips_through_the_loader(tmp_path: Path) -> None:
    original = load_profile(preset_path("split"))
    path = tmp_path / "again.yaml"
    path.write_text(dump_profile(original))
    assert load_profile(path) == original


def test_dump_keeps_model_key_order() -> None:
    profile = load_profile(preset_path("us-openai"))
    text = dump_profile(profile)
    keys = [line.split(":")[0] for line in text.splitlines() if line and line[0] != " "]
    # unset optional keys (catalog_overlay) are left out
    assert keys == [k for k in Profile.model_fields if getattr(profile, k) is not None]
