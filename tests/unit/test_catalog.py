"""The vendor catalog: its schema, and an entry for every vendor a profile can choose."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import pytest

from selfhost.catalog import (
    CATALOG_PATH,
    UNKNOWN,
    CatalogEntry,
    load_catalog,
    load_catalog_file,
    parse_catalog,
)
from selfhost.errors import ValidationFailed
from selfhost.models import AI, CDN, Email_, Monitoring, Profile
from selfhost.paths import PROFILES_DIR
from selfhost.plan import AI_PROVIDERS_ID, plan
from selfhost.profile_io import load_profile

SEED = Path("/work/shared/seed/backend-chat-subprocessor-list.txt")
PRESETS = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def _profile(**choices: Any) -> Profile:
    data: dict[str, Any] = {
        "customer": {"name": "Acme", "id": "acme", "contact_email": "dpo@acme.example",
                     "residency": "US"},
        "hosts": {"app": [{"name": "chat1", "address": "192.0.2.10"}]},
    }
    data.update(choices)
    return Profile.model_validate(data)


def _choices(model: type[Any], field: str) -> list[str]:
    return [v for v in get_args(model.model_fields[field].annotation)
            if v not in ("none", "disabled", "smtp", "self-hosted")]


def _vendor_profiles() -> list[tuple[str, Profile]]:
    """One profile per vendor choice the Profile model offers (read from the model,
    so a vendor added to the model without a catalog entry fails here)."""
    out = [(f"ai={p}", _profile(ai={"provider": p})) for p in _choices(AI, "provider")]
    out += [(f"email={p}", _profile(email={"provider": p,
                                           "from_address": "support@acme.example"}))
            for p in _choices(Email_, "provider")]
    out += [(f"monitoring={p}", _profile(monitoring={"provider": p}))
            for p in _choices(Monitoring, "provider")]
    out += [(f"cdn={p}", _profile(cdn={"provider": p})) for p in _choices(CDN, "provider")]
    out.append(("tls=acme-letsencrypt", _profile(tls={"mode": "acme",
                                                      "domain": "chat.acme.example"})))
    return out


VENDOR_PROFILES = _vendor_profiles()


def test_shipped_catalog_validates_against_its_schema() -> None:
    assert load_catalog_file(CATALOG_PATH).ids() == load_catalog().ids()


@pytest.mark.parametrize(("label", "profile"), VENDOR_PROFILES,
                         ids=[label for label, _ in VENDOR_PROFILES])
def test_every_choosable_vendor_has_an_entry_of_its_category(label: str,
                                                             profile: Profile) -> None:
    catalog = load_catalog()
    parties = plan(profile).third_parties
    # An empty set (no third party at all) fails too.
    assert {catalog.get(p.id).category == p.category for p in parties} == {True}, label


def test_vendor_choices_cover_every_provider_value() -> None:
    ids = {p.id for _, profile in VENDOR_PROFILES for p in plan(profile).third_parties}
    assert ids == {"openai", "anthropic", "sendgrid", "postmark", "amazon-ses", "sentry",
                   "datadog", "cloudflare", "amazon-cloudfront", "letsencrypt"}


@pytest.mark.parametrize("preset", PRESETS)
def test_not_used_vendors_are_saas_list_entries(preset: str) -> None:
    catalog = load_catalog()
    the_plan = plan(load_profile(PROFILES_DIR / f"{preset}.yaml"))
    assert all(catalog.get(n.id).in_saas_list for n in the_plan.not_used
               if n.id != AI_PROVIDERS_ID)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_saas_vendor_is_either_used_or_not_used(preset: str) -> None:
    catalog = load_catalog()
    the_plan = plan(load_profile(PROFILES_DIR / f"{preset}.yaml"))
    accounted = {p.id for p in the_plan.third_parties} | {n.id for n in the_plan.not_used}
    if AI_PROVIDERS_ID in accounted:
        accounted |= {e.id for e in catalog.entries if e.category == "ai"}
    assert {e.id for e in catalog.entries if e.in_saas_list} <= accounted


SEEDED_FIELDS = ("legal_entity", "data_location", "website", "privacy_policy", "dpa",
                 "service")


@pytest.mark.parametrize("entry", [e for e in load_catalog().entries if e.in_saas_list],
                         ids=lambda e: e.id)
def test_saas_vendor_facts_are_copied_from_the_seed_list(entry: CatalogEntry) -> None:
    seed = SEED.read_text(encoding="utf-8")
    invented = [f for f in SEEDED_FIELDS
                if getattr(entry, f) != UNKNOWN and getattr(entry, f) not in seed]
    assert invented == []


def test_unknown_facts_are_explicit_not_empty() -> None:
    empty = [(e.id, name) for e in load_catalog().entries
             for name, value in e.facts().model_dump().items() if value in ("", [], None)]
    assert empty == []


_ENTRY = """\
schema_version: 1
entries:
  - id: acme-mail
    name: Acme Mail
    category: email
    in_saas_list: false
    legal_entity: unknown
    service: unknown
    purpose: unknown
    data_processed: unknown
    data_location: unknown
    location_codes: {codes}
    transfer_safeguards: unknown
    certifications: unknown
    security_measures: unknown
    data_usage: unknown
    website: unknown
    privacy_policy: unknown
    dpa: unknown
    address: unknown
    contact: unknown
    contact_person: {{name: unknown, position: unknown, contact: unknown}}
    processing_description: unknown
    sub_processors: unknown{extra}
"""


def test_schema_accepts_an_all_unknown_entry() -> None:
    catalog = parse_catalog(_ENTRY.format(codes="unknown", extra=""), "c.yaml")
    assert catalog.get("acme-mail").legal_entity == UNKNOWN


@pytest.mark.parametrize(("codes", "extra", "expected"), [
    ("unknown", "\n    colour: blue", r"^c\.yaml:3: entries\.0\.colour: unknown key"),
    ("[XX]", "", r"^c\.yaml:3: entries\.0\.location_codes\..*'XX' is not EU"),
])
def test_schema_rejects_bad_entries_with_file_and_line(codes: str, extra: str,
                                                       expected: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_catalog(_ENTRY.format(codes=codes, extra=extra), "c.yaml")
    assert re.search(expected, info.value.message, re.MULTILINE)


def test_schema_rejects_an_unknown_category() -> None:
    text = _ENTRY.format(codes="unknown", extra="").replace("category: email",
                                                            "category: payments")
    with pytest.raises(ValidationFailed, match=r"c\.yaml:3: entries\.0\.category: Input"):
        parse_catalog(text, "c.yaml")


def test_schema_rejects_a_missing_fact() -> None:
    text = _ENTRY.format(codes="unknown", extra="").replace("    contact: unknown\n", "")
    with pytest.raises(ValidationFailed, match=r"entries\.0\.contact: required field"):
        parse_catalog(text, "c.yaml")


def test_schema_rejects_duplicate_ids() -> None:
    body = _ENTRY.format(codes="unknown", extra="")
    text = body + body.split("entries:\n", 1)[1]
    with pytest.raises(ValidationFailed, match="duplicate entry ids: acme-mail"):
        parse_catalog(text, "c.yaml")


def test_unknown_vendor_id_names_the_fix() -> None:
    with pytest.raises(ValidationFailed, match=r"no entry with id 'nobody'.*add the vendor"):
        load_catalog().get("nobody")
