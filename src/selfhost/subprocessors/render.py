"""``selfhost subprocessors render``: profile -> Plan -> list -> file."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from selfhost import catalog_overlay
from selfhost.catalog import Catalog, load_catalog
from selfhost.errors import InvalidInput
from selfhost.i18n import DEFAULT, Lang
from selfhost.plan import Plan, plan
from selfhost.profile_checks import resolve
from selfhost.profile_io import load_profile
from selfhost.subprocessors import archive, signing
from selfhost.subprocessors.annex import annex_html, annex_pdf
from selfhost.subprocessors.document import (
    Activation,
    Evidence,
    SubprocessorList,
    build_document,
)
from selfhost.subprocessors.dpv import to_jsonld
from selfhost.subprocessors.files import Format, write_file
from selfhost.subprocessors.render_html import render_html
from selfhost.subprocessors.render_md import render_markdown


def _json(doc: SubprocessorList, lang: Lang = DEFAULT) -> str:
    # the language is already in the document's sentences; keys never change
    return doc.to_json()


RENDERERS: dict[Format, Callable[[SubprocessorList, Lang], str]] = {
    "md": render_markdown,
    "html": render_html,
    "json": _json,
}


def today() -> date:
    """The default date of a list: the day of ``SOURCE_DATE_EPOCH`` when set (the
    reproducible-builds convention), else today in UTC."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is None:
        return datetime.now(UTC).date()
    if not epoch.isdigit():
        raise InvalidInput(f"SOURCE_DATE_EPOCH={epoch!r} is not a number of seconds since "
                           "1970-01-01 (unset it, or pass --date YYYY-MM-DD)")
    return datetime.fromtimestamp(int(epoch), UTC).date()


def render(doc: SubprocessorList, fmt: Format, lang: Lang = DEFAULT) -> str:
    return RENDERERS[fmt](doc, lang)


def load_plan(profile_path: Path) -> Plan:
    return plan(load_profile(profile_path))


@dataclass(frozen=True)
class ListInputs:
    """What a customer's list is built from: the Plan and the catalog as overlaid."""

    plan: Plan
    catalog: Catalog
    overlay_facts: dict[str, list[str]]


def list_inputs(profile_path: Path, overlay: Path | None = None) -> ListInputs:
    """The profile's Plan and catalog; ``overlay`` (else the profile's
    ``catalog_overlay``, relative to its directory) lays the customer's facts over it."""
    profile = load_profile(profile_path)
    catalog = load_catalog()
    if overlay is None and profile.catalog_overlay:
        overlay = resolve(profile_path, profile.catalog_overlay)
    if overlay is None:
        return ListInputs(plan(profile), catalog, {})
    overlaid, provenance = catalog_overlay.apply(
        catalog, catalog_overlay.load_overlay(overlay, catalog), overlay)
    return ListInputs(plan(profile), overlaid, provenance)


def archived_activations(profile_path: Path, the_plan: Plan) -> dict[str, Activation]:
    """How each subprocessor became active, from the customer's archive (if any)."""
    path = archive.archive_path(profile_path, the_plan.customer.id)
    return archive.activations(archive.load(path))


@dataclass(frozen=True)
class Rendered:
    content: bytes
    #: files written (the list, then its detached signature), empty for stdout
    written: list[Path]
    key_id: str | None


def render_profile(profile_path: Path, *, fmt: Format, on: date,
                   output: Path | None = None, sign_key: Path | None = None,
                   detached: bool = False, evidence: Evidence | None = None,
                   catalog_overlay_path: Path | None = None,
                   prospect: Plan | None = None, lang: Lang = DEFAULT) -> Rendered:
    """The list for the profile at ``profile_path``, written to ``output`` when given.

    ``prospect`` (the Plan of a prospect's answers) replaces the profile's.
    ``evidence`` (reconciliation with the live hosts) is embedded in the list, so
    a signature covers it. An embedded signature needs ``fmt == "json"``; a
    detached one needs ``output`` (the signature goes to ``OUTPUT.sig``).
    """
    if sign_key is not None and not detached and fmt != "json":
        raise InvalidInput(f"--sign-key with --format {fmt}: an embedded signature needs "
                           "--format json (or add --detached to write OUTPUT.sig)")
    if detached and (sign_key is None or output is None):
        raise InvalidInput("--detached needs --sign-key and --output (the signature is "
                           "written beside the output file as OUTPUT.sig)")
    key = signing.load_private_key(sign_key) if sign_key is not None else None
    if prospect is not None:
        # a prospect has no deployment yet: no archive, no overlay of its own
        doc = build_document(prospect, on=on, lang=lang)
    else:
        inputs = list_inputs(profile_path, catalog_overlay_path)
        doc = build_document(inputs.plan, on=on, evidence=evidence, catalog=inputs.catalog,
                             overlay_facts=inputs.overlay_facts,
                             activations=archived_activations(profile_path, inputs.plan),
                             lang=lang)
    if key is not None and not detached:
        doc = signing.sign_embedded(doc, key)
    content = render(doc, fmt, lang).encode("utf-8")
    written: list[Path] = []
    if output is not None:
        if not output.parent.is_dir():
            raise InvalidInput(f"{output.parent} is not a directory (create it, or choose "
                               "another --output)")
        write_file(output, content)
        written.append(output)
        if key is not None and detached:
            sig = signing.signature_path(output)
            write_file(sig, signing.sign_detached(content, output.name, key))
            written.append(sig)
    key_id = signing.key_id(key.public_key()) if key is not None else None
    return Rendered(content=content, written=written, key_id=key_id)


def write_annex(profile_path: Path, fmt: str, output: Path | None, *, on: date,
                overlay: Path | None = None, lang: Lang = DEFAULT) -> bytes | None:
    """The Annex III (pdf or html) or the DPV export; written to ``output`` when given
    (then None is returned), else returned. A PDF needs ``output``."""
    if fmt == "pdf" and output is None:
        raise InvalidInput("--format pdf needs --output FILE.pdf (a PDF is not printed "
                           "to a terminal)")
    inputs = list_inputs(profile_path, overlay)
    doc = build_document(inputs.plan, on=on, catalog=inputs.catalog,
                         overlay_facts=inputs.overlay_facts,
                         activations=archived_activations(profile_path, inputs.plan),
                         lang=lang)
    content = (annex_pdf(doc, lang) if fmt == "pdf" else annex_html(doc, lang).encode("utf-8")
               if fmt == "html" else to_jsonld(doc).encode("utf-8"))
    if output is None:
        return content
    if not output.parent.is_dir():
        raise InvalidInput(f"{output.parent} is not a directory (create it, or choose "
                           "another --output)")
    write_file(output, content)
    return None
