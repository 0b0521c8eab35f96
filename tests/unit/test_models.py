"""Every rule of the Profile model, one bad input each."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from selfhost.models import Profile, field_errors, known_keys, validate_field
from selfhost.questions import delete, put

BASE: dict[str, Any] = {
    "customer": {"name": "ACME", "id": "acme", "contact_email": "dpo@acme.example",
                 "residency": "DE"},
    "topology": "all-in-one",
    "hosts": {"app": [{"name": "chat1", "address": "192.0.2.10"}]},
    "tls": {"domain": "chat.acme.example"},
}

SPLIT = {"topology": "split", "hosts.app": [{"name": "app1", "address": "192.0.2.11"}],
         "hosts.database": {"name": "db1", "address": "192.0.2.21"},
         "hosts.cache": {"name": "cache1", "address": "192.0.2.31"}}


def _profile(changes: dict[str, Any], removals: tuple[str, ...] = ()) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    for path, value in changes.items():
        put(data, path, value)
    for path in removals:
        delete(data, path)
    return data


def _problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    try:
        Profile.model_validate(data)
    except ValidationError as exc:
        return field_errors(exc)
    return []


BAD: list[tuple[str, dict[str, Any], tuple[str, ...], str, str]] = [
    ("unknown key", {"customer.nmae": "x"}, (), "customer.nmae", "did you mean 'name'"),
    ("unknown top-level key", {"topolgy": "split"}, (), "topolgy", "did you mean 'topology'"),
    ("unknown key, no close match", {"ai.zzz": 1}, (), "ai.zzz", "valid keys here"),
    ("wrong type: int", {"hosts.app.0.ssh_port": "ssh"}, (), "hosts.app.0.ssh_port",
     "valid integer"),
    ("wrong type: bool", {"backups.enabled": "maybe"}, (), "backups.enabled", "true or false"),
    ("wrong type: list", {"ai.models": "gpt-4o"}, (), "ai.models", "write a list"),
    ("wrong type: mapping", {"customer": "ACME"}, (), "customer", "mapping"),
    ("missing section", {}, ("customer",), "customer", "required field is missing"),
    ("missing field", {}, ("customer.contact_email",), "customer.contact_email",
     "required field is missing"),
    ("hostname: leading hyphen", {"hosts.app.0.name": "-chat"}, (), "hosts.app.0.name",
     "RFC 1123"),
    ("hostname: underscore", {"tls.domain": "chat_1.example"}, (), "tls.domain", "RFC 1123"),
    ("hostname: label too long", {"hosts.app.0.address": "a" * 64 + ".example"}, (),
     "hosts.app.0.address", "RFC 1123"),
    ("port 0", {"hosts.app.0.ssh_port": 0}, (), "hosts.app.0.ssh_port", "1 to 65535"),
    ("port 65536", {"database.port": 65536}, (), "database.port", "1 to 65535"),
    ("email", {"customer.contact_email": "dpo.acme.example"}, (), "customer.contact_email",
     "not a valid e-mail"),
    ("email sender", {"email.provider": "sendgrid", "email.from_address": "a@b"}, (),
     "email.from_address", "not a valid e-mail"),
    ("residency code", {"customer.residency": "XX"}, (), "customer.residency",
     "not a residency code"),
    ("EU residency + US AI without SCCs", {"customer.residency": "EU", "ai.provider": "openai"},
     (), "ai.international_transfer_acknowledged", "Standard Contractual Clauses"),
    ("IN residency + US AI without SCCs", {"customer.residency": "IN",
                                           "ai.provider": "anthropic"}, (),
     "ai.international_transfer_acknowledged", "international transfer"),
    ("models with AI disabled", {"ai.models": ["gpt-4o"]}, (), "ai.models", "AI is disabled"),
    ("external database without DSN", {"database.mode": "external"}, (), "database.dsn",
     "needs its DSN"),
    ("external database DSN without TLS", {
        "database.mode": "external",
        "database.dsn": "postgresql://app@db.example:5432/app?sslmode=disable"},
     (), "database.dsn", "does not require TLS"),
    ("external database DSN with password", {
        "database.mode": "external",
        "database.dsn": "postgresql://app:pw@db.example:5432/app?sslmode=verify-full"},
     (), "database.dsn", "contains a password"),
    ("DSN without external mode", {
        "database.dsn": "postgresql://app@db.example:5432/app?sslmode=verify-full"},
     (), "database.dsn", "only used with database.mode: external"),
    ("external cache without URL", {"cache.mode": "external"}, (), "cache.url",
     "needs its URL"),
    ("external cache URL without TLS", {"cache.mode": "external",
                                        "cache.url": "redis://app@cache.example:6379/0"},
     (), "cache.url", "does not use TLS"),
    ("split without database host", SPLIT, ("hosts.database",), "hosts.database",
     "needs its host"),
    ("split without cache host", SPLIT, ("hosts.cache",), "hosts.cache", "needs its host"),
    ("no app host", {"hosts.app": []}, (), "hosts.app", "at least one app host"),
    ("all-in-one with two hosts", {"hosts.app.1": {"name": "chat2", "address": "192.0.2.11"}},
     (), "hosts.app", "exactly one host"),
    ("all-in-one with a database host", {"hosts.database": {"name": "db1",
                                                            "address": "192.0.2.21"}},
     (), "hosts.database", "all-in-one"),
    ("duplicate host names", {**SPLIT, "hosts.database": {"name": "app1",
                                                          "address": "192.0.2.21"}},
     (), "hosts", "used twice"),
    ("provided TLS without files", {"tls.mode": "provided"}, (), "tls.cert_file",
     "needs tls.cert_file and tls.key_file"),
    ("smtp without relay", {"email.provider": "smtp", "email.from_address": "a@acme.example"},
     (), "email.smtp_host", "relay"),
    ("e-mail vendor without sender", {"email.provider": "postmark"}, (),
     "email.from_address", "sender address"),
    ("self-hosted monitoring without endpoint", {"monitoring.provider": "self-hosted"}, (),
     "monitoring.self_hosted_endpoint", "collector"),
    ("letsencrypt with another directory", {"tls.mode": "acme",
                                            "tls.acme.directory_url": "https://ca.acme.example/dir"},
     (), "tls.acme.provider", "not Let's Encrypt"),
    ("TLS version", {"tls.min_version": "1.0"}, (), "tls.min_version", "'1.2' or '1.3'"),
    ("customer id", {"customer.id": "ACME GmbH"}, (), "customer.id", "not a valid id"),
    ("ssh user", {"hosts.ssh_user": "Root"}, (), "hosts.ssh_user", "Unix user name"),
    ("retention", {"backups.retention_days": 0}, (), "backups.retention_days",
     "greater than or equal to 1"),
]


@pytest.mark.parametrize(("changes", "removals", "path", "fragment"),
                         [pytest.param(*case[1:], id=case[0]) for case in BAD])
def test_bad_profile_reports_the_field_and_fix(changes: dict[str, Any],
                                               removals: tuple[str, ...], path: str,
                                               fragment: str) -> None:
    assert any(p == path and fragment in m for p, m in _problems(_profile(changes, removals)))


GOOD: list[tuple[str, dict[str, Any]]] = [
    ("base", {}),
    ("single-label host names", {"hosts.app.0.address": "chat", "tls.domain": "chat"}),
    ("IPv6 address", {"hosts.app.0.address": "2001:db8::10"}),
    ("trailing dot", {"tls.domain": "chat.acme.example."}),
    ("US residency + US AI needs no acknowledgement", {"customer.residency": "US",
                                                       "ai.provider": "openai"}),
    ("acknowledged transfer", {"customer.residency": "EU", "ai.provider": "anthropic",
                               "ai.international_transfer_acknowledged": True}),
    ("unquoted TLS version", {"tls.min_version": 1.2}),
    ("lower-case residency", {"customer.residency": "eu"}),
    ("split", SPLIT),
]


@pytest.mark.parametrize("changes", [pytest.param(c, id=i) for i, c in GOOD])
def test_good_profile_validates(changes: dict[str, Any]) -> None:
    assert _problems(_profile(changes)) == []


def test_known_keys_walk_into_lists() -> None:
    assert known_keys("hosts.app.0") == ["name", "address", "ssh_port"]


@pytest.mark.parametrize(("path", "value", "fragment"), [
    ("customer.contact_email", "x", "not a valid e-mail"),
    ("hosts.app.0.ssh_port", 70000, "1 to 65535"),
    ("topology", "mesh", "'all-in-one' or 'split'"),
])
def test_validate_field_checks_one_answer(path: str, value: Any, fragment: str) -> None:
    assert fragment in (validate_field(path, value) or "")
