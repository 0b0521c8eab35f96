"""The customer's own vendor facts, laid over the shipped catalog.

A customer's legal team knows facts the catalog cannot: the address and contact
person in their own contract, the DPA they signed, the data-usage terms they
negotiated, the vendor's sub-processors. They write them in a YAML file::

    schema_version: 1
    vendors:
      openai:
        address: OpenAI Ireland Ltd, 1st Floor, The Liffey Trust Centre, Dublin
        data_usage: No training on API data (our agreement of 2026-03-01)
        contact_person: {name: Jane Roe, position: DPO, contact: privacy@openai.com}

given as ``--catalog-overlay FILE`` or ``catalog_overlay: FILE`` in the profile
(relative to the profile's directory). It is validated like a profile (every
problem as ``FILE:LINE: field: message``); the list names, per subprocessor,
which facts came from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from selfhost import inputs
from selfhost.catalog import Catalog, Fact, FactList, LocationCodes
from selfhost.errors import ValidationFailed
from selfhost.models import field_errors
from selfhost.profile_io import LineMap, parse_yaml_mapping


class _Overlay(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContactPersonOverlay(_Overlay):
    name: Fact | None = None
    position: Fact | None = None
    contact: Fact | None = None


class VendorOverlay(_Overlay):
    """Any fact of :class:`selfhost.catalog.VendorFacts` but the display name."""

    legal_entity: Fact | None = None
    service: Fact | None = None
    purpose: Fact | None = None
    data_processed: FactList | None = None
    data_location: Fact | None = None
    location_codes: LocationCodes | None = None
    transfer_safeguards: FactList | None = None
    certifications: FactList | None = None
    security_measures: Fact | None = None
    data_usage: Fact | None = None
    website: Fact | None = None
    privacy_policy: Fact | None = None
    dpa: Fact | None = None
    address: Fact | None = None
    contact: Fact | None = None
    contact_person: ContactPersonOverlay | None = None
    processing_description: Fact | None = None
    sub_processors: FactList | None = None


class Overlay(_Overlay):
    schema_version: Literal[1] = 1
    vendors: dict[str, VendorOverlay]


#: per vendor id, the facts (dotted, e.g. ``contact_person.name``) the overlay gave
Provenance = dict[str, list[str]]


def _read(path: Path) -> str:
    try:
        return inputs.read_text(path, inputs.TEXT_LIMIT)
    except FileNotFoundError:
        raise ValidationFailed([f"{path}:1: the catalog overlay does not exist (check the "
                                "path; in a profile it is relative to the profile's "
                                "directory)"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationFailed([f"{path}:1: cannot read the catalog overlay "
                                f"({inputs.reason(exc)})"]) \
            from None


def load_overlay(path: Path, catalog: Catalog) -> Overlay:
    """The overlay at ``path``, checked against the model and the catalog's ids."""
    data, lines = parse_yaml_mapping(_read(path), str(path))
    try:
        overlay = Overlay.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed([f"{path}:{lines.line_of(p)}: {p}: {m}"
                                for p, m in field_errors(exc)]) from None
    _check_ids(path, overlay, catalog, lines)
    return overlay


def _check_ids(path: Path, overlay: Overlay, catalog: Catalog, lines: LineMap) -> None:
    known = catalog.ids()
    problems = [f"{path}:{lines.line_of(f'vendors.{vid}')}: vendors.{vid}: no vendor "
                f"{vid!r} in the catalog (use one of: {', '.join(known)})"
                for vid in overlay.vendors if vid not in known]
    if problems:
        raise ValidationFailed(problems)


def apply(catalog: Catalog, overlay: Overlay, source: Path) -> tuple[Catalog, Provenance]:
    """The catalog with the overlay's facts, and which facts those are."""
    entries = []
    provenance: Provenance = {}
    for entry in catalog.entries:
        given = overlay.vendors.get(entry.id)
        if given is None:
            entries.append(entry)
            continue
        update = given.model_dump(exclude_none=True, exclude={"contact_person"})
        fields = sorted(update)
        if given.contact_person is not None:
            person = given.contact_person.model_dump(exclude_none=True)
            update["contact_person"] = {**entry.contact_person.model_dump(), **person}
            fields += sorted(f"contact_person.{k}" for k in person)
        try:
            entries.append(type(entry).model_validate({**entry.model_dump(), **update}))
        except ValidationError as exc:  # pragma: no cover - the overlay model checks first
            raise ValidationFailed([f"{source}:1: vendors.{entry.id}.{p}: {m}"
                                    for p, m in field_errors(exc)]) from None
        provenance[entry.id] = fields
    return catalog.model_copy(update={"entries": entries}), provenance
