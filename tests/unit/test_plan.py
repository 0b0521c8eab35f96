"""The Plan of every preset: third parties, egress allowlist, secrets, text."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from selfhost.cli import main
from selfhost.paths import preset_path
from selfhost.plan import Plan, plan
from selfhost.plan_text import render_plan
from selfhost.profile_io import load_profile


def _plan(preset: str) -> Plan:
    return plan(load_profile(preset_path(preset)))


THIRD_PARTIES = {
    "air-gapped": [],
    "eu-anthropic": ["anthropic"],
    "external-db": [],
    "split": [],
    "us-openai": ["openai", "sendgrid", "sentry"],
}

ALLOWLISTS = {
    "air-gapped": [],
    "eu-anthropic": ["api.anthropic.com:443", "monitoring.example.eu:443"],
    "external-db": [],
    "split": [],
    "us-openai": [".ingest.us.sentry.io:443", "api.openai.com:443", "smtp.sendgrid.net:587"],
}

SUPPLIED = {
    "air-gapped": [],
    "eu-anthropic": ["anthropic_api_key"],
    "external-db": ["cache_password", "database_password"],
    "split": [],
    "us-openai": ["email_password", "openai_api_key", "sentry_dsn"],
}


@pytest.mark.parametrize(("preset", "expected"), THIRD_PARTIES.items())
def test_third_parties(preset: str, expected: list[str]) -> None:
    assert _plan(preset).third_party_ids() == expected


@pytest.mark.parametrize(("preset", "expected"), ALLOWLISTS.items())
def test_egress_allowlist(preset: str, expected: list[str]) -> None:
    assert [str(e) for e in _plan(preset).egress_allowlist] == expected


@pytest.mark.parametrize(("preset", "expected"), SUPPLIED.items())
def test_supplied_secrets(preset: str, expected: list[str]) -> None:
    assert [s.name for s in _plan(preset).secrets_required if s.source == "supplied"] == (
        expected)


@pytest.mark.parametrize("preset", ["air-gapped", "external-db", "split"])
def test_ai_disabled_leaves_no_ai_provider_in_the_plan(preset: str) -> None:
    text = _plan(preset).to_json().lower()
    assert [w for w in ("openai", "anthropic", "_api_key") if w in text] == []


@pytest.mark.parametrize("preset", ["air-gapped", "external-db", "split"])
def test_ai_disabled_names_the_ai_category_as_not_used(preset: str) -> None:
    assert "ai-providers" in {n.id for n in _plan(preset).not_used}


def test_ai_enabled_names_the_other_provider_as_not_used() -> None:
    assert "openai" in {n.id for n in _plan("eu-anthropic").not_used}


def test_external_services_are_reached_directly() -> None:
    assert [str(e) for e in _plan("external-db").app_direct] == [
        "db.example.net:5432", "cache.example.net:6380"]


def test_split_places_components() -> None:
    assert {h.name: h.components for h in _plan("split").hosts} == {
        "app1": ["common", "tls", "egress", "app", "nginx"],
        "app2": ["common", "tls", "egress", "app", "nginx"],
        "db1": ["common", "tls", "postgresql", "backup"],
        "cache1": ["common", "tls", "redis"],
    }


@pytest.mark.parametrize(("preset", "ca_file"), [
    ("split", "/etc/backend-chat/ca.crt"),  # the internal CA signs the cache host's cert
    ("air-gapped", None),  # the cache is on loopback, without TLS
    ("external-db", None),  # the provider's certificate, from the system's store
])
def test_the_apps_environment_names_the_ca_of_a_local_tls_cache(preset: str,
                                                                 ca_file: str | None) -> None:
    env = {e.key: e.value for e in _plan(preset).app.env}
    assert env.get("REDIS_CA_FILE") == ca_file


def test_json_is_stable() -> None:
    assert _plan("us-openai").to_json() == _plan("us-openai").to_json()


TEXT_SECTIONS = ["Hosts and components", "Wiring", "Third parties receiving personal data",
                 "Egress allowlist", "Not used", "Secrets needed (names only)"]


@pytest.mark.parametrize("section", TEXT_SECTIONS)
def test_text_has_every_section(section: str) -> None:
    assert section in render_plan(_plan("us-openai"))


def test_text_names_each_third_party_with_its_data() -> None:
    text = render_plan(_plan("us-openai"))
    assert "  sendgrid (email): Send notification e-mails" in text


def test_text_says_when_nothing_leaves() -> None:
    assert "none: no personal data leaves the deployment" in render_plan(_plan("air-gapped"))


def test_cli_plan_json_matches_library() -> None:
    result = CliRunner().invoke(main, ["plan", str(preset_path("split")), "--json"])
    assert (result.exit_code, result.output) == (0, _plan("split").to_json())


def test_cli_plan_text() -> None:
    result = CliRunner().invoke(main, ["plan", str(preset_path("eu-anthropic"))])
    assert (result.exit_code, "anthropic (ai)" in result.output) == (0, True)


def test_cli_plan_of_invalid_profile_exits_2(tmp_path: Any) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("topology: mesh\n")
    result = CliRunner().invoke(main, ["plan", str(bad)])
    assert (result.exit_code, f"{bad}:1: topology:" in result.output) == (2, True)


@pytest.mark.parametrize(("preset", "summary"), [
    ("air-gapped", "is valid (0 third parties)"),
    ("eu-anthropic", "is valid (1 third party: anthropic)"),
    ("us-openai", "is valid (3 third parties: openai, sendgrid, sentry)"),
])
def test_cli_validate_ok_line(preset: str, summary: str) -> None:
    result = CliRunner().invoke(main, ["validate", str(preset_path(preset))])
    assert (result.exit_code, f"OK: {preset_path(preset)} {summary}\n") == (0, result.output)


def test_cli_validate_bad_profile_exits_2_one_line_per_problem(tmp_path: Any) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("customer:\n  name: X\n  id: x\n  contact_email: nope\n  residency: ZZ\n"
                   "hosts:\n  app:\n    - name: chat1\n      address: 192.0.2.10\n")
    result = CliRunner().invoke(main, ["validate", str(bad)])
    assert (result.exit_code, result.output.splitlines()) == (2, [
        f"{bad}:4: customer.contact_email: 'nope' is not a valid e-mail address "
        "(expected name@example.com)",
        f"{bad}:5: customer.residency: 'ZZ' is not a residency code (use EU, or an ISO "
        "3166-1 alpha-2 country code such as US, IN, DE)",
    ])
