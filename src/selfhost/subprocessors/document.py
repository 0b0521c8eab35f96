"""The subprocessor list as data: the JSON shape every format is rendered from.

:func:`build_document` reads only the Plan (which third parties receive which
personal data) and the catalog (what is known about each of them), so the list
cannot name a vendor the deployment does not use, nor miss one it does.

The JSON form is versioned (``schema_version``); its JSON Schema is committed
as ``schemas/subprocessor-list.v1.schema.json`` and generated from
:class:`SubprocessorList`. A fact nobody has confirmed is the string
``unknown`` in the JSON and "to be confirmed" in the other formats.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selfhost import __version__
from selfhost.catalog import (
    UNKNOWN,
    Catalog,
    FactList,
    VendorFacts,
    load_catalog,
    show,
)
from selfhost.errors import ValidationFailed
from selfhost.i18n import DEFAULT, N_, Gettext, Lang, gettext_for
from selfhost.models import field_errors
from selfhost.plan import AI_PROVIDERS_ID, Category, Plan, ServiceWiring, ThirdParty
from selfhost.residency import contains

SCHEMA_VERSION = 1


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Customer(_Doc):
    name: str
    id: str
    residency: str = Field(description="EU or an ISO 3166-1 alpha-2 country code")
    contact_email: str


class DeploymentHost(_Doc):
    name: str
    components: list[str]


class Store(_Doc):
    mode: Literal["local", "external"]
    #: who stores the data, in words (e.g. "PostgreSQL on your host db1")
    description: str


class Deployment(_Doc):
    """Where the customer's own components run (the hosts box of the data-flow picture)."""

    topology: Literal["all-in-one", "split"]
    hosts: list[DeploymentHost]
    database: Store
    cache: Store
    egress_scope: Literal["app", "host"] = Field(
        default="app", description="Whose outbound traffic the hosts' firewall fences: "
        "'app' (the application's user only) or 'host' (every user and service of the "
        "hosts). Lists written before the scope was recorded enforced 'app'")


class Use(_Doc):
    """What this deployment sends to the third party, from the Plan."""

    purpose: str
    data: list[str]
    #: outbound ``host:port`` the deployment contacts (empty for a CDN, which is
    #: in front of the deployment rather than contacted by it)
    endpoints: list[str]
    reached_from: Literal["app", "host", "none"]


class Transfer(_Doc):
    status: Literal["within-residency", "international", "to-be-confirmed"]
    residency: str
    locations: FactList
    safeguards: FactList
    note: str


class Activation(_Doc):
    """How a subprocessor came into the list, from the customer's archive."""

    kind: Literal["initial-list", "notice", "override"]
    #: the archive entry: the first published list, the notice or the override
    entry: int
    #: the list's date, the notice date or the day of the override
    date: date
    detail: str


class Subprocessor(_Doc):
    id: str = Field(description="Catalog id of the vendor")
    category: Category
    facts: VendorFacts = Field(description="The catalog's facts, unchanged")
    use: Use
    transfer: Transfer
    overlay_facts: list[str] = Field(
        default_factory=list, description="The facts (dotted names under 'facts') that "
        "came from the customer's catalog overlay rather than the shipped catalog")
    activation: Activation | None = Field(
        default=None, description="The archive entry under which it became active (the "
        "first published list, a notice of change or an override); null without an archive")


class NotUsedEntry(_Doc):
    id: str = Field(description="Catalog id, or 'ai-providers' for every AI provider "
                    "when AI is disabled (no provider is named then)")
    name: str
    service: str
    reason: str


class DataFlow(_Doc):
    data_type: str
    stored_by: str
    #: third parties that process this data as their service (names)
    processed_by: list[str]
    #: third parties that can see it otherwise, e.g. a CDN in transit (names)
    third_party_access: list[str]


class NoticeTerms(_Doc):
    days: int = Field(description="Changes are announced at least this many days ahead")
    objection_days: int = Field(description="Objections are accepted this many days "
                                "after the notice")
    contact_email: str


class EvidenceCheck(_Doc):
    host: str
    check: str
    result: Literal["pass", "fail"]
    detail: str


class Evidence(_Doc):
    """Proof from the live hosts that the list matches what they do; the
    signature covers it like every other field."""

    collected_at: str = Field(description="ISO 8601 date-time of the collection")
    tool_version: str
    checks: list[EvidenceCheck]


class Signature(_Doc):
    """An embedded Ed25519 signature (see selfhost.subprocessors.signing)."""

    algorithm: Literal["ed25519"]
    #: what the signature covers
    covers: Literal["canonical-json-without-signature"]
    key_id: str = Field(description="sha256: hex digest of the raw 32-byte public key")
    value: str = Field(description="base64 of the 64-byte signature")


class SubprocessorList(_Doc):
    """A deployment's subprocessor list (GDPR Art. 28(2)), version 1.

    Written by ``selfhost subprocessors render --format json``: UTF-8, keys
    sorted, two-space indent, one final newline; the same profile, catalog and
    date give the same bytes. ``subprocessors`` holds exactly the third parties
    the deployment sends personal data to; a fact that has not been confirmed
    is the string ``unknown``. ``evidence`` is null unless reconciliation with
    the live hosts was collected. ``signature`` is present only in the embedded
    signed form: an Ed25519 signature over the canonical JSON (sorted keys, no
    whitespace, UTF-8) of the object without ``signature``. A change that is
    not backward compatible raises ``schema_version``.
    """

    schema_version: Literal[1] = 1
    kind: Literal["selfhost-subprocessor-list"] = "selfhost-subprocessor-list"
    tool_version: str
    date: date
    customer: Customer
    profile_fingerprint: str
    deployment: Deployment
    subprocessors: list[Subprocessor]
    not_used: list[NotUsedEntry]
    data_flows: list[DataFlow]
    notice: NoticeTerms
    evidence: Evidence | None = Field(
        default=None, description="Reconciliation with the live hosts, when collected")
    signature: Signature | None = Field(
        default=None, description="Present only in the embedded signed form")

    def payload(self) -> dict[str, Any]:
        """The JSON object without the signature (what a signature covers)."""
        return self.model_dump(mode="json", exclude={"signature"})

    def to_json(self) -> str:
        """The JSON form: sorted keys, two-space indent, UTF-8, one final newline."""
        data = self.payload()
        if self.signature is not None:
            data["signature"] = self.signature.model_dump(mode="json")
        return dump_json(data)


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# -- building ------------------------------------------------------------------------

def build_document(plan: Plan, *, on: date, catalog: Catalog | None = None,
                   evidence: Evidence | None = None,
                   activations: dict[str, Activation] | None = None,
                   overlay_facts: dict[str, list[str]] | None = None,
                   tool_version: str = __version__, lang: Lang = DEFAULT) -> SubprocessorList:
    """The list for ``plan`` as of ``on``. Pure: same inputs, same document.

    ``catalog`` may carry a customer's overlay; ``overlay_facts`` then says which
    facts of each vendor came from it. ``lang`` is the language of the list's own
    sentences (notes, descriptions, reasons); facts and keys do not change with it.
    """
    catalog = catalog or load_catalog()
    _ = gettext_for(lang)
    residency = plan.customer.residency
    active = activations or {}
    overlaid = overlay_facts or {}
    subprocessors = [_subprocessor(p, catalog, residency, _).model_copy(
        update={"activation": _activation(active[p.id], _) if p.id in active else None,
                "overlay_facts": overlaid.get(p.id, [])})
        for p in plan.third_parties]
    return SubprocessorList(
        tool_version=tool_version,
        date=on,
        customer=Customer(name=plan.customer.name, id=plan.customer.id,
                          residency=residency, contact_email=plan.customer.contact_email),
        profile_fingerprint=plan.profile_fingerprint,
        deployment=_deployment(plan, _),
        subprocessors=subprocessors,
        not_used=_not_used(plan, catalog, _),
        data_flows=_data_flows(plan, subprocessors, _),
        notice=NoticeTerms(days=plan.notice.days, objection_days=plan.notice.objection_days,
                           contact_email=plan.customer.contact_email),
        evidence=evidence,
    )


def _not_used(plan: Plan, catalog: Catalog, _: Gettext) -> list[NotUsedEntry]:
    """The SaaS list's vendors this deployment does not use, and why.

    With AI disabled no AI provider is named anywhere in the list: the AI
    providers collapse into one entry, :data:`AI_PROVIDERS_ID`.
    """
    out: list[NotUsedEntry] = []
    for item in plan.not_used:
        if item.id == AI_PROVIDERS_ID:
            out.append(NotUsedEntry(id=AI_PROVIDERS_ID, name=_("AI providers"),
                                    service=_("Large Language Model (LLM) API"),
                                    reason=_(item.reason)))
            continue
        entry = catalog.get(item.id)
        # the Plan's reasons are a fixed set of English sentences, each a msgid
        out.append(NotUsedEntry(id=item.id, name=entry.name, service=entry.service,
                                reason=_(item.reason)))
    return out


def _subprocessor(party: ThirdParty, catalog: Catalog, residency: str,
                  _: Gettext) -> Subprocessor:
    entry = catalog.get(party.id)
    return Subprocessor(
        id=party.id, category=party.category, facts=entry.facts(),
        # the Plan's purposes and data categories are fixed English texts, each a msgid
        use=Use(purpose=_(party.purpose), data=[_(d) for d in party.data],
                endpoints=[str(e) for e in party.egress], reached_from=party.egress_from),
        transfer=_transfer(entry.facts(), residency, _),
    )


def _transfer(facts: VendorFacts, residency: str, _: Gettext) -> Transfer:
    locations = facts.location_codes
    safeguards = facts.transfer_safeguards
    if locations == UNKNOWN:
        status: Literal["within-residency", "international", "to-be-confirmed"] = \
            "to-be-confirmed"
        note = _("Data location to be confirmed: whether data leaves the customer's "
                 "residency ({residency}) cannot be assessed yet").format(residency=residency)
    elif all(contains(residency, code) for code in locations):
        status = "within-residency"
        note = _("Data stays within the customer's residency ({residency})").format(
            residency=residency)
    else:
        status = "international"
        outside = ", ".join(outside_residency(residency, list(locations)))
        shown = show(UNKNOWN, _) if safeguards == UNKNOWN else "; ".join(safeguards)
        note = _("International transfer: data is processed in {outside}, outside the "
                 "customer's residency ({residency}); safeguards: {safeguards}").format(
            outside=outside, residency=residency, safeguards=shown)
    return Transfer(status=status, residency=residency, locations=locations,
                    safeguards=safeguards, note=note)


def outside_residency(residency: str, locations: list[str]) -> list[str]:
    """The location codes that lie outside ``residency``."""
    return [c for c in locations if not contains(residency, c)]


def _activation(activation: Activation, _: Gettext) -> Activation:
    """The archive's account of an activation in the list's language."""
    return activation.model_copy(update={"detail": activation_text(activation.detail, _)})


def _store(wiring: ServiceWiring, product: str, _: Gettext) -> Store:
    if wiring.mode == "external":
        return Store(mode="external", description=_("Your own managed {product} ({host})")
                     .format(product=product, host=wiring.host))
    return Store(mode="local", description=_("{product} on your host {host}").format(
        product=product, host=wiring.server_host))


def _deployment(plan: Plan, _: Gettext) -> Deployment:
    return Deployment(
        topology=plan.topology,
        hosts=[DeploymentHost(name=h.name, components=list(h.components)) for h in plan.hosts],
        database=_store(plan.database, "PostgreSQL", _),
        cache=_store(plan.cache, "Redis", _),
        egress_scope=plan.egress_scope,
    )


#: which categories of third party touch each kind of data: (processes it, sees it)
_FLOWS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    (N_("Conversations and messages"), "database", ("ai",), ("cdn",)),
    (N_("Knowledge base documents"), "database", ("ai",), ("cdn",)),
    (N_("User accounts (e-mail, name) and notification e-mails"), "database", ("email",),
     ("cdn",)),
    (N_("Session tokens and WebSocket state"), "cache", (), ("cdn",)),
    (N_("Analytics (aggregated)"), "database", (), ()),
    (N_("Application logs and error reports"), "app-hosts", ("monitoring",), ()),
)


def _data_flows(plan: Plan, subs: list[Subprocessor], _: Gettext) -> list[DataFlow]:
    def names(categories: tuple[str, ...]) -> list[str]:
        return [s.facts.name for s in subs if s.category in categories]

    app_hosts = ", ".join(h.name for h in plan.hosts_with("app"))
    stored = {
        "database": _store(plan.database, "PostgreSQL", _).description,
        "cache": _store(plan.cache, "Redis", _).description,
        "app-hosts": _("Your app hosts ({hosts})").format(hosts=app_hosts),
    }
    rows = [DataFlow(data_type=_(kind), stored_by=stored[where], processed_by=names(proc),
                     third_party_access=names(seen))
            for kind, where, proc, seen in _FLOWS]
    if any(s.category == "certificate-authority" for s in subs):
        rows.append(DataFlow(
            data_type=_("Domain name and ACME account e-mail"), stored_by=stored["app-hosts"],
            processed_by=names(("certificate-authority",)), third_party_access=[]))
    return rows


def from_json(text: str, source: str) -> SubprocessorList:
    """A list read back from its JSON form, checked against the model."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationFailed([f"{source}:{exc.lineno}: not valid JSON: {exc.msg}"]) \
            from None
    try:
        return SubprocessorList.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed([
            f"{source}:1: {path}: {message} (is this a subprocessor list written by "
            "selfhost subprocessors render --format json?)"
            for path, message in field_errors(exc)]) from None


#: the archive's activation sentences (selfhost.subprocessors.archive), as msgids
_ACTIVATION_TEXTS = (
    (re.compile(r"in the list published on (?P<date>\S+) \(archive entry (?P<entry>\d+)\)"),
     N_("in the list published on {date} (archive entry {entry})")),
    (re.compile(r"notice (?P<seq>\d+) of (?P<date>\S+), effective (?P<effective>\S+) "
                r"\(archive entry (?P<entry>\d+)\)"),
     N_("notice {seq} of {date}, effective {effective} (archive entry {entry})")),
    (re.compile(r"deployed on (?P<date>\S+) before its notice was effective; reason: "
                r"(?P<reason>.*) \(archive entry (?P<entry>\d+)\)", re.DOTALL),
     N_("deployed on {date} before its notice was effective; reason: {reason} "
        "(archive entry {entry})")),
)


def activation_text(detail: str, _: Gettext) -> str:
    """An archive's activation sentence in the list's language (the reason given for
    an override stays as it was written)."""
    for pattern, msgid in _ACTIVATION_TEXTS:
        match = pattern.fullmatch(detail)
        if match:
            return _(msgid).format(**match.groupdict())
    return detail
