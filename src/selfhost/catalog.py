"""The vendor catalog: facts about every third party a deployment can involve.

The facts live in ``data/catalog.yaml`` (data, not code); this module is its
schema and its loader. A fact nobody has confirmed is the literal ``unknown``,
never a guess, and every rendered document shows it as "to be confirmed".
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from selfhost.errors import ValidationFailed
from selfhost.models import field_errors
from selfhost.paths import DATA_DIR
from selfhost.residency import RESIDENCY_CODES

CATALOG_PATH = DATA_DIR / "catalog.yaml"

#: the value of a fact that has not been confirmed
UNKNOWN = "unknown"
#: how documents show :data:`UNKNOWN`
TO_BE_CONFIRMED = "to be confirmed"

VendorCategory = Literal["ai", "hosting", "database", "cache", "email", "monitoring", "cdn",
                         "certificate-authority"]

#: the categories in the order documents list them, with their section titles
CATEGORY_TITLES: dict[str, str] = {
    "ai": "AI and machine learning services",
    "hosting": "Cloud infrastructure and hosting",
    "database": "Database services",
    "cache": "Caching services",
    "email": "E-mail services",
    "monitoring": "Monitoring and error tracking",
    "cdn": "Content delivery network (CDN)",
    "certificate-authority": "Certificate authority",
}


def _location(code: str) -> str:
    if code not in RESIDENCY_CODES:
        raise ValueError(f"{code!r} is not EU or an ISO 3166-1 alpha-2 country code")
    return code


Text = Annotated[str, Field(min_length=1, max_length=2000)]
#: a text fact, or ``unknown``
Fact = Text
#: a list fact, or ``unknown`` when nobody has confirmed it
FactList = list[Text] | Literal["unknown"]
LocationCodes = list[Annotated[str, AfterValidator(_location)]] | Literal["unknown"]


class ContactPerson(BaseModel):
    """The vendor's contact person for data protection (SCCs Annex III)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Fact
    position: Fact
    contact: Fact = Field(description="E-mail, phone or postal contact of the person")


class VendorFacts(BaseModel):
    """What a subprocessor list states about one vendor (GDPR Art. 28, Annex IV)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Text = Field(description="Short display name of the vendor")
    legal_entity: Fact = Field(description="The contracting legal entity, or 'unknown'")
    service: Fact
    purpose: Fact = Field(description="What the vendor's service is for, as the vendor "
                          "describes it; what this deployment sends is under 'use'")
    data_processed: FactList
    data_location: Fact = Field(description="Where the data is processed, in words")
    location_codes: LocationCodes = Field(
        description="Where the data is processed as EU or ISO 3166-1 alpha-2 codes")
    transfer_safeguards: FactList = Field(
        description="Safeguards for international transfers (SCCs, DPF)")
    certifications: FactList
    security_measures: Fact
    data_usage: Fact = Field(description="What the vendor may do with the data "
                             "(e.g. no model training)")
    website: Fact
    privacy_policy: Fact
    dpa: Fact = Field(description="Data processing agreement: a link or how to obtain it")
    address: Fact = Field(description="Postal address of the legal entity (Annex IV)")
    contact: Fact = Field(description="Contact point for data protection (Annex IV)")
    contact_person: ContactPerson = Field(description="Contact person (Annex III)")
    processing_description: Fact = Field(
        description="The processing this vendor performs in its part, delimiting its "
        "responsibilities (Annex III)")
    sub_processors: FactList = Field(description="The vendor's own sub-processors")


class CatalogEntry(VendorFacts):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")] = Field(
        description="The key the Plan uses for this third party")
    category: VendorCategory
    #: listed in backend.chat's SaaS subprocessor list, so a self-hosted list
    #: names it under "Not used in this deployment" when the Plan does not use it
    in_saas_list: bool

    def facts(self) -> VendorFacts:
        return VendorFacts.model_validate(
            self.model_dump(include=set(VendorFacts.model_fields)))


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    entries: list[CatalogEntry]

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        ids = [e.id for e in self.entries]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate entry ids: {', '.join(duplicates)} "
                             "(each vendor appears once)")
        return self

    def get(self, vendor_id: str) -> CatalogEntry:
        for entry in self.entries:
            if entry.id == vendor_id:
                return entry
        raise ValidationFailed([
            f"{CATALOG_PATH}:1: entries: no entry with id {vendor_id!r} (add the vendor "
            "to the catalog, with 'unknown' for every fact not yet confirmed)"])

    def ids(self) -> list[str]:
        return [e.id for e in self.entries]


def parse_catalog(text: str, source: str) -> Catalog:
    """A catalog from YAML text; every problem as ``FILE:LINE: path: message``."""
    try:
        data: Any = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise ValidationFailed([f"{source}:1: not valid YAML: {exc}"]) from None
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        lines = _entry_lines(text)
        problems = []
        for path, message in field_errors(exc):
            parts = path.split(".")
            line = 1
            if len(parts) > 1 and parts[0] == "entries" and parts[1].isdigit():
                index = int(parts[1])
                line = lines[index] if index < len(lines) else 1
            problems.append(f"{source}:{line}: {path}: {message}")
        raise ValidationFailed(problems) from None


def _entry_lines(text: str) -> list[int]:
    """The line where each entry starts (``  - id:``), in order."""
    return [n for n, line in enumerate(text.splitlines(), start=1)
            if line.lstrip().startswith("- id:")]


def load_catalog_file(path: Path) -> Catalog:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationFailed([f"{path}:1: cannot read the catalog ({exc})"]) from None
    return parse_catalog(text, str(path))


@cache
def load_catalog() -> Catalog:
    """The catalog shipped with the package (read once per process)."""
    return load_catalog_file(CATALOG_PATH)


def show(value: str | list[str], translate: Callable[[str], str] | None = None) -> str:
    """A fact as a document shows it: ``unknown`` becomes "to be confirmed" (in the
    document's language when ``translate`` is its gettext); known facts as given."""
    if value == UNKNOWN:
        return translate(TO_BE_CONFIRMED) if translate else TO_BE_CONFIRMED
    if isinstance(value, list):
        return ", ".join(value)
    return value
