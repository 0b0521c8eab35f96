"""The list as a DPA annex: "Annex III — List of sub-processors" (HTML and PDF).

Annex III of the 2021 SCCs asks, per sub-processor, for its name, address,
contact person (name, position, contact details) and a description of the
processing, with a clear delimitation of responsibilities. The PDF is the same
HTML laid out by WeasyPrint (CSS paged media: A4, page numbers), so what is
printed is what is reviewed in the browser.
"""

from __future__ import annotations

from selfhost import templating
from selfhost.catalog import TO_BE_CONFIRMED, UNKNOWN, show
from selfhost.errors import PrerequisiteMissing
from selfhost.i18n import DEFAULT, Gettext, Lang, gettext_for
from selfhost.subprocessors.document import Subprocessor, SubprocessorList

TEMPLATE = "annex-iii.html.j2"


def annex_rows(sub: Subprocessor, _: Gettext = str) -> list[tuple[str, str, bool]]:
    """(label, text, unconfirmed) for each Annex III fact of one sub-processor."""
    f, person = sub.facts, sub.facts.contact_person
    rows = [
        (_("Name"), f.name),
        (_("Legal entity"), f.legal_entity),
        (_("Address"), f.address),
        (_("Contact person: name"), person.name),
        (_("Contact person: position"), person.position),
        (_("Contact person: contact details"), person.contact),
        (_("Description of the processing"), f.processing_description),
        (_("Purpose in this deployment"), sub.use.purpose),
        (_("Personal data it receives"), "; ".join(sub.use.data)),
        (_("Location of the processing"), f.data_location),
        (_("Transfer safeguards"), show(f.transfer_safeguards, _)),
        (_("Its own sub-processors"), show(f.sub_processors, _)),
    ]
    if sub.overlay_facts:
        rows.append((_("Facts supplied by the controller"), ", ".join(sub.overlay_facts)))
    return [(label, show(value, _), value in (UNKNOWN, TO_BE_CONFIRMED, _(TO_BE_CONFIRMED)))
            for label, value in rows]


def annex_html(doc: SubprocessorList, lang: Lang = DEFAULT) -> str:
    _ = gettext_for(lang)
    return templating.render(TEMPLATE, lang, doc=doc,
                             annex_rows=lambda s: annex_rows(s, _))


def annex_pdf(doc: SubprocessorList, lang: Lang = DEFAULT) -> bytes:
    """The annex as PDF (A4, page numbers), laid out from :func:`annex_html`."""
    try:
        from weasyprint import HTML  # noqa: PLC0415 - loads Pango: only when a PDF is made
    except OSError as exc:
        raise PrerequisiteMissing(f"cannot make a PDF: WeasyPrint needs the Pango library "
                                  f"({exc}); install it: apt-get install libpango-1.0-0 "
                                  "libpangoft2-1.0-0") from None
    pdf: bytes = HTML(string=annex_html(doc, lang)).write_pdf()
    return pdf
