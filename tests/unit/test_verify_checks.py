"""Checks generated from the Plan: each component of a preset brings its checks."""

from __future__ import annotations

import pytest

from selfhost.paths import preset_path
from selfhost.plan import Endpoint, Plan, plan
from selfhost.profile_io import load_profile
from selfhost.verify.components import generate, host_spec
from selfhost.verify.contract import AnyCheck

TARGET = Endpoint(host="10.0.0.99", port=22)


def _plan(preset: str) -> Plan:
    return plan(load_profile(preset_path(preset)))


def _checks(preset: str) -> list[AnyCheck]:
    p = _plan(preset)
    return generate(p, {h.name: TARGET for h in p.hosts_with("app")})


def _keys(preset: str) -> set[str]:
    return {c.key for c in _checks(preset)}


PRESENT = [
    # every host: the host checks
    *[("air-gapped", f"chat1::host.{n}") for n in
      ("nftables", "sysctl", "deployment_record", "secret_files")],
    *[("split", f"{h}::host.deployment_record") for h in ("app1", "app2", "db1", "cache1")],
    ("split", "db1::host.exposed_ports"),
    ("split", "cache1::host.exposed_ports"),
    # PostgreSQL where the Plan puts it
    *[("air-gapped", f"chat1::postgresql.{n}") for n in
      ("running", "password_encryption", "scram_secrets", "hba_methods", "listen",
       "connection_logging", "data_directory")],
    ("split", "db1::postgresql.hostssl_only"),
    ("split", "db1::postgresql.ssl"),
    # Redis where the Plan puts it, and the app user's view from each app host
    *[("us-openai", f"chat1::redis.{n}") for n in
      ("running_as_redis", "bind", "protected_mode", "noauth_ping", "config_file", "tls",
       "app_user_config_refused")],
    ("split", "cache1::redis.tls"),
    ("split", "app1::redis.app_user_config_refused"),
    ("split", "app2::redis.app_user_config_refused"),
    # nginx, app and egress on every app host
    *[("eu-anthropic", f"chat1::nginx.{n}") for n in
      ("config_test", "tls13", "tls12_refused", "certificate", "hsts", "server_header",
       "unknown_host", "workers_not_root", "exposed_ports")],
    *[("external-db", f"chat1::app.{n}") for n in
      ("unit", "env_file_mode", "env_keys", "healthz")],
    *[("split", f"app2::egress.{n}") for n in
      ("allowlist", "unlisted_refused", "observed", "direct_dropped")],
    # AI disabled: every provider refused; one provider: the other one refused
    ("air-gapped", "chat1::egress.ai_refused.openai"),
    ("air-gapped", "chat1::egress.ai_refused.anthropic"),
    ("external-db", "chat1::egress.ai_refused.openai"),
    ("us-openai", "chat1::egress.ai_refused.anthropic"),
    ("eu-anthropic", "chat1::egress.ai_refused.openai"),
]

ABSENT = [
    # no component, no check
    ("external-db", "chat1::postgresql.running"),
    ("external-db", "chat1::redis.bind"),
    ("external-db", "chat1::redis.app_user_config_refused"),
    ("split", "db1::nginx.config_test"),
    ("split", "db1::app.unit"),
    ("split", "cache1::postgresql.running"),
    ("split", "app1::postgresql.running"),
    # all-in-one: PostgreSQL stays on loopback, so no TLS checks
    ("air-gapped", "chat1::postgresql.hostssl_only"),
    ("air-gapped", "chat1::postgresql.ssl"),
    # a chosen AI provider is not expected to be refused
    ("us-openai", "chat1::egress.ai_refused.openai"),
    ("eu-anthropic", "chat1::egress.ai_refused.anthropic"),
]


@pytest.mark.parametrize(("preset", "key"), PRESENT)
def test_component_brings_its_check(preset: str, key: str) -> None:
    assert key in _keys(preset)


@pytest.mark.parametrize(("preset", "key"), ABSENT)
def test_no_check_without_its_component(preset: str, key: str) -> None:
    assert key not in _keys(preset)


@pytest.mark.parametrize("preset", ["air-gapped", "eu-anthropic", "external-db", "split",
                                    "us-openai"])
def test_check_keys_are_unique(preset: str) -> None:
    keys = [c.key for c in _checks(preset)]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("preset", ["air-gapped", "us-openai", "split"])
def test_every_check_states_expectation_and_fix(preset: str) -> None:
    assert all(c.expected and c.fix and c.description for c in _checks(preset))


def test_direct_outbound_needs_a_target() -> None:
    keys = {c.key for c in generate(_plan("air-gapped"))}
    assert "chat1::egress.direct_dropped" not in keys


@pytest.mark.parametrize(("preset", "allowlist"), [
    ("air-gapped", []),
    ("us-openai", [".ingest.us.sentry.io:443", "api.openai.com:443", "smtp.sendgrid.net:587"]),
    ("eu-anthropic", ["api.anthropic.com:443", "monitoring.example.eu:443"]),
])
def test_allowlist_check_expects_the_plans_allowlist(preset: str, allowlist: list[str]
                                                     ) -> None:
    check = next(c for c in _checks(preset) if c.id == "egress.allowlist")
    assert list(check.params) == allowlist


@pytest.mark.parametrize(("preset", "keys"), [
    ("air-gapped", ["DATABASE_URL", "REDIS_URL", "AI_PROVIDER", "HTTPS_PROXY", "NO_PROXY",
                    "PUBLIC_URL", "SECRET_KEY"]),
    ("us-openai", ["DATABASE_URL", "REDIS_URL", "AI_PROVIDER", "OPENAI_API_KEY", "AI_MODELS",
                   "HTTPS_PROXY", "NO_PROXY", "SMTP_URL", "SENTRY_DSN", "PUBLIC_URL",
                   "SECRET_KEY"]),
])
def test_env_check_expects_exactly_the_plans_keys(preset: str, keys: list[str]) -> None:
    check = next(c for c in _checks(preset) if c.id == "app.env_keys")
    assert list(check.params.keys) == keys


@pytest.mark.parametrize("preset", ["air-gapped", "us-openai"])
def test_env_check_reveals_no_secret_values(preset: str) -> None:
    p = _plan(preset)
    secret_keys = {e.key for e in p.app.env if e.secret is not None and
                   e.placement == "value"}
    check = next(c for c in _checks(preset) if c.id == "app.env_keys")
    assert not secret_keys & set(check.params.values)


def test_sysctl_expectations_are_the_layouts() -> None:
    # The common role writes the Plan's layout.kernel_settings (site.yml hands them over);
    # verify must expect those values, not a copy of its own: a changed layout moves it.
    p = _plan("us-openai")
    moved = p.model_copy(update={"layout": p.layout.model_copy(
        update={"kernel_settings": {"kernel.kptr_restrict": 1, "fs.suid_dumpable": 0}})})
    sysctl = next(c for c in generate(moved, {h.name: TARGET for h in moved.hosts_with("app")})
                  if c.id == "host.sysctl")
    assert sysctl.params == {"kernel.kptr_restrict": "1", "fs.suid_dumpable": "0"}


@pytest.mark.parametrize(("preset", "host", "sections"), [
    ("air-gapped", "chat1", {"postgresql", "redis_server", "redis_app", "app", "egress",
                             "nginx", "tls"}),
    ("split", "db1", {"postgresql"}),
    ("split", "cache1", {"redis_server"}),
    ("split", "app1", {"redis_app", "app", "egress", "nginx", "tls"}),
    ("external-db", "chat1", {"app", "egress", "nginx", "tls"}),
])
def test_hosts_are_asked_only_about_their_components(preset: str, host: str,
                                                      sections: set[str]) -> None:
    p = _plan(preset)
    spec = host_spec(p, next(h for h in p.hosts if h.name == host), TARGET)
    component_sections = {"postgresql", "redis_server", "redis_app", "app", "egress", "nginx",
                          "tls"}
    assert set(spec) & component_sections == sections
