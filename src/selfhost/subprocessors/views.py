"""What the Markdown and HTML renderers show of a list: its sections, each
subprocessor's labelled facts, in the list's language."""

from __future__ import annotations

from selfhost.catalog import CATEGORY_TITLES, UNKNOWN, VendorFacts, show
from selfhost.i18n import DEFAULT, N_, Gettext, Lang, gettext_for
from selfhost.subprocessors.document import Subprocessor, SubprocessorList

#: what each egress scope enforces, as the list states it
SCOPE_STATEMENTS = {
    "app": N_("Enforced on the hosts (egress scope: app): the application can reach no "
              "third party but those listed here; its firewall and egress proxy are "
              "generated from the same plan. Other users and services of the hosts are "
              "not restricted by this deployment."),
    "host": N_("Enforced on the hosts (egress scope: host): the application can reach no "
               "third party but those listed here, and every other user and service of the "
               "hosts is limited to the hosts' own needs (replies, package updates through "
               "the configured mirror or proxy, name resolution, time, and connections "
               "between the deployment's hosts); everything else is dropped."),
}


def sections(doc: SubprocessorList,
             _: Gettext = str) -> list[tuple[str, list[Subprocessor]]]:
    """The subprocessors grouped by category, in catalog category order."""
    return [(_(title), [s for s in doc.subprocessors if s.category == category])
            for category, title in CATEGORY_TITLES.items()
            if any(s.category == category for s in doc.subprocessors)]


_REACHED = {
    "app": N_("the application, through the deployment's egress proxy"),
    "host": N_("the host itself (not the application)"),
    "none": N_("not contacted by the deployment; it sits in front of it"),
}


def fact_rows(sub: Subprocessor, _: Gettext = str) -> list[tuple[str, str]]:
    """The labelled facts one subprocessor shows, in order, as display text."""
    f = sub.facts
    endpoints = ", ".join(sub.use.endpoints) if sub.use.endpoints else _("none")
    return [
        (_("Legal entity"), show(f.legal_entity, _)),
        (_("Service"), show(f.service, _)),
        (_("Purpose in this deployment"), sub.use.purpose),
        (_("Data processed"), "; ".join(sub.use.data)),
        (_("Reached by"), _("{reached} (endpoints: {endpoints})").format(
            reached=_(_REACHED[sub.use.reached_from]), endpoints=endpoints)),
        (_("Data location"), show(f.data_location, _)),
        (_("Transfer safeguards"), show(f.transfer_safeguards, _)),
        (_("Certifications"), show(f.certifications, _)),
        (_("Security measures"), show(f.security_measures, _)),
        (_("Data usage"), show(f.data_usage, _)),
        (_("Website"), show(f.website, _)),
        (_("Privacy policy"), show(f.privacy_policy, _)),
        (_("Data processing agreement"), show(f.dpa, _)),
        (_("Address"), show(f.address, _)),
        (_("Data protection contact"), show(f.contact, _)),
        (_("Contact person"), _person(f, _)),
        (_("Description of the processing"), show(f.processing_description, _)),
        (_("Its own sub-processors"), show(f.sub_processors, _)),
        *([(_("Facts from your catalog overlay"),
            ", ".join(f.replace(".", " ").replace("_", " ") for f in sub.overlay_facts))]
          if sub.overlay_facts else []),
        *([(_("Active under"), sub.activation.detail)] if sub.activation else []),
    ]


def _person(f: VendorFacts, _: Gettext) -> str:
    p = f.contact_person
    if UNKNOWN == p.name == p.position == p.contact:
        return show(UNKNOWN, _)
    return ", ".join(show(v, _) for v in (p.name, p.position, p.contact))


TRANSFER_LABELS = {
    "within-residency": N_("Within residency"),
    "international": N_("International transfer"),
    "to-be-confirmed": N_("To be confirmed"),
}


def view(doc: SubprocessorList, lang: Lang = DEFAULT) -> dict[str, object]:
    """The template context both text renderers share."""
    _ = gettext_for(lang)
    return {"doc": doc, "sections": sections(doc, _),
            "fact_rows": lambda sub: fact_rows(sub, _),
            "transfer_labels": {k: _(v) for k, v in TRANSFER_LABELS.items()},
            "tbc": show(UNKNOWN, _),
            "scope_statement": _(SCOPE_STATEMENTS[doc.deployment.egress_scope])}
