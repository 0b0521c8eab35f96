"""The list in the W3C Data Privacy Vocabulary (DPV 2), as JSON-LD.

One ``dpv:Process`` (the deployment's processing) with its data controller and
one ``dpv:DataSubProcessor`` per subprocessor: name, address, contact person
(schema.org ContactPoint), the description of its processing, its purpose in
this deployment, the personal data it receives, its locations (DPV-LOC) and
Standard Contractual Clauses where the catalog names them. A fact nobody has
confirmed is left out (in RDF an absent statement claims nothing) rather than
written as a guess; the context is inline, so no processor fetches anything.
"""

from __future__ import annotations

import json
from typing import Any

from selfhost.catalog import UNKNOWN
from selfhost.subprocessors.document import Subprocessor, SubprocessorList

CONTEXT: dict[str, Any] = {
    "dpv": "https://w3id.org/dpv#",
    "loc": "https://w3id.org/dpv/loc#",
    "dct": "http://purl.org/dc/terms/",
    "schema": "https://schema.org/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}


def _known(out: dict[str, Any], key: str, value: object) -> None:
    if value != UNKNOWN and value not in (None, [], ""):
        out[key] = value


def _person(sub: Subprocessor) -> dict[str, Any] | None:
    p = sub.facts.contact_person
    point: dict[str, Any] = {"@type": "schema:ContactPoint"}
    _known(point, "schema:name", p.name)
    _known(point, "schema:jobTitle", p.position)
    _known(point, "schema:description", p.contact)
    return point if len(point) > 1 else None


def _subprocessor(sub: Subprocessor) -> dict[str, Any]:
    f = sub.facts
    node: dict[str, Any] = {
        "@id": f"urn:selfhost:vendor:{sub.id}",
        "@type": "dpv:DataSubProcessor",
        "dpv:hasName": f.legal_entity if f.legal_entity != UNKNOWN else f.name,
        "dpv:hasPurpose": {"@type": "dpv:Purpose", "dct:description": sub.use.purpose},
        "dpv:hasPersonalData": [{"@type": "dpv:PersonalData", "dct:description": d}
                                for d in sub.use.data],
    }
    _known(node, "dct:description", f.processing_description)
    _known(node, "dpv:hasAddress", f.address)
    _known(node, "dpv:hasContact", f.contact)
    _known(node, "schema:url", f.website)
    person = _person(sub)
    if person is not None:
        node["schema:contactPoint"] = person
    if f.location_codes != UNKNOWN:
        node["dpv:hasLocation"] = [{"@id": f"loc:{code}"} for code in f.location_codes]
    if f.transfer_safeguards != UNKNOWN and any(
            "Standard Contractual Clauses" in s for s in f.transfer_safeguards):
        node["dpv:hasTechnicalOrganisationalMeasure"] = {
            "@id": "dpv:StandardContractualClauses"}
    return node


def to_jsonld(doc: SubprocessorList) -> str:
    customer = doc.customer
    data = {
        "@context": CONTEXT,
        "@id": f"urn:selfhost:subprocessors:{customer.id}:{doc.date.isoformat()}",
        "@type": "dpv:Process",
        "dct:title": f"Sub-processors of {customer.name}",
        "dct:date": {"@value": doc.date.isoformat(), "@type": "xsd:date"},
        "dpv:hasDataController": {
            "@id": f"urn:selfhost:customer:{customer.id}",
            "@type": "dpv:DataController",
            "dpv:hasName": customer.name,
            "dpv:hasContact": customer.contact_email,
            "dpv:hasLocation": {"@id": f"loc:{customer.residency}"},
        },
        "dpv:hasDataProcessor": [_subprocessor(s) for s in doc.subprocessors],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
