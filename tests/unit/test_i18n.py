"""Documents in German and French: translated fixed texts, vendor facts as given."""

from __future__ import annotations

import ast
import gettext
import json
import re
import shutil
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from selfhost import templating
from selfhost.cli.app import main
from selfhost.i18n import DOMAIN, Lang, locale_dir
from selfhost.paths import PROFILES_DIR
from selfhost.plan import plan
from selfhost.profile_io import load_profile
from selfhost.subprocessors.annex import annex_html
from selfhost.subprocessors.batch import run_batch
from selfhost.subprocessors.diff import compare
from selfhost.subprocessors.document import (
    Activation,
    Evidence,
    EvidenceCheck,
    SubprocessorList,
    build_document,
)
from selfhost.subprocessors.render import render

DAY = date(2026, 12, 1)
SRC = Path(__file__).parents[2] / "src" / "selfhost"
PRESETS = sorted(PROFILES_DIR.glob("*.yaml"))
TRANSLATED: tuple[Lang, ...] = ("de", "fr")


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, ["subprocessors", *args])


def preset(name: str) -> str:
    return str(PROFILES_DIR / f"{name}.yaml")


# -- what each language says -------------------------------------------------------

def test_the_german_list_speaks_of_unterauftragsverarbeiter() -> None:
    result = cli("render", preset("eu-anthropic"), "--lang", "de", "--date", "2026-12-01")
    assert result.exit_code == 0, result.output
    for text in ("# Liste der Unterauftragsverarbeiter: ",
                 "## Was ist ein Unterauftragsverarbeiter?",
                 "Art. 28 Abs. 2 DSGVO",
                 "## Übermittlungen in Drittländer",
                 "## Änderungen und Ihr Widerspruchsrecht",
                 "| Datenart | Gespeichert von | Verarbeitet von | Zugriff Dritter |",
                 "**Auftragsverarbeitungsvertrag (Art. 28 DSGVO):**",
                 "noch zu bestätigen"):
        assert text in result.output
    # vendor facts as the catalog gives them
    assert "Standard Contractual Clauses (SCCs)" in result.output


def test_the_french_list_speaks_of_sous_traitants_ulterieurs() -> None:
    result = cli("render", preset("eu-anthropic"), "--lang", "fr", "--format", "html",
                 "--date", "2026-12-01")
    assert result.exit_code == 0, result.output
    for text in ('<html lang="fr">',
                 "<h1>Liste des sous-traitants ultérieurs : ",
                 "Qu&#39;est-ce qu&#39;un sous-traitant ultérieur ?",
                 "l&#39;article 28, paragraphe 2, du RGPD",
                 "<h2>Transferts internationaux</h2>",
                 "Modifications et votre droit d&#39;opposition",
                 "à confirmer"):
        assert text in result.output.replace("'", "&#39;")


def test_the_annex_in_german_and_french_uses_the_scc_terms() -> None:
    doc = build_document(plan(load_profile(Path(preset("eu-anthropic")))), on=DAY, lang="de")
    german = annex_html(doc, "de")
    assert "<h1>Anhang III — Liste der Unterauftragsverarbeiter</h1>" in german
    assert "Klausel 9 der Standardvertragsklauseln; Art. 28 Abs. 2 und 4 DSGVO" in german
    assert "<th>Verantwortlicher</th>" in german
    doc = build_document(plan(load_profile(Path(preset("eu-anthropic")))), on=DAY, lang="fr")
    french = annex_html(doc, "fr")
    assert "Annexe III — Liste des sous-traitants ultérieurs" in french
    assert "clause 9 des clauses contractuelles types" in french
    assert "<th>Responsable du traitement</th>" in french


def test_the_german_pdf_annex_has_the_german_title(tmp_path: Path) -> None:
    out = tmp_path / "annex.pdf"
    result = cli("annex", preset("eu-anthropic"), "--lang", "de", "--output", str(out),
                 "--date", "2026-12-01")
    assert result.exit_code == 0, result.output
    tool = shutil.which("pdftotext")
    assert tool is not None, "pdftotext is missing: apt-get install poppler-utils"
    text = " ".join(subprocess.run([tool, "-layout", str(out), "-"], capture_output=True,
                                   text=True, check=True).stdout.split())
    assert "Anhang III — Liste der Unterauftragsverarbeiter" in text
    assert "Seite 1 von 1" in text


def test_a_notice_in_french(tmp_path: Path) -> None:
    old = build_document(plan(load_profile(Path(preset("air-gapped")))), on=DAY)
    new = build_document(plan(load_profile(Path(preset("eu-anthropic")))), on=DAY)
    notice = compare(old, new, DAY)
    md = notice.to_markdown("fr")
    assert md.startswith("# Notification de modification des sous-traitants ultérieurs : ")
    assert "## Votre droit d'opposition" in md
    assert "| Prise d'effet possible le |" in md
    html = notice.to_html(3, "de")
    assert "<h2>Ihr Widerspruchsrecht</h2>" in html
    assert "Nummer 3 im Archiv der Unterauftragsverarbeiter" in html


def test_the_json_keys_do_not_change_with_the_language() -> None:
    def keys(value: Any, path: str = "") -> set[str]:
        if isinstance(value, dict):
            return {f"{path}.{k}" for k in value} | {
                p for k, v in value.items() for p in keys(v, f"{path}.{k}")}
        if isinstance(value, list):
            return {p for v in value for p in keys(v, path + "[]")}
        return set()

    docs = {lang: json.loads(cli("render", preset("eu-anthropic"), "--format", "json",
                                 "--lang", lang, "--date", "2026-12-01").output)
            for lang in ("en", "de", "fr")}
    assert keys(docs["de"]) == keys(docs["en"]) == keys(docs["fr"])
    anthropic = next(s for s in docs["de"]["subprocessors"] if s["id"] == "anthropic")
    assert anthropic["transfer"]["note"].startswith("Übermittlung in ein Drittland: ")
    assert anthropic["facts"] == next(s for s in docs["en"]["subprocessors"]
                                  if s["id"] == "anthropic")["facts"]


def test_english_is_the_default_and_unchanged() -> None:
    default = cli("render", preset("split"), "--format", "html", "--date", "2026-12-01")
    english = cli("render", preset("split"), "--format", "html", "--lang", "en",
                  "--date", "2026-12-01")
    assert default.output == english.output
    assert "<h1>Subprocessor list: " in default.output


@pytest.mark.parametrize("command", [
    ["render", preset("split")],
    ["annex", preset("split"), "--format", "html"],
    ["diff", preset("split"), preset("split")],
    ["batch", "prospects.csv"],
])
def test_an_unknown_language_is_invalid_input_with_the_fix(command: list[str]) -> None:
    result = cli(*command, "--lang", "es")
    assert (result.exit_code, result.output) == (
        2, "error: --lang: unknown language 'es' (choose one of: en, de, fr)\n")


# -- no English left ---------------------------------------------------------------

def _msgids() -> set[str]:
    """Every text the templates and the code mark for translation."""
    env = templating.environment()
    ids: set[str] = set()
    for path in (SRC / "data" / "templates").glob("*.j2"):
        for _line, _func, message in env.extract_translations(path.read_text()):
            ids.add(message[0] if isinstance(message, tuple) else message)
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in {"_", "N_"} and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                ids.add(node.args[0].value)
    return ids


def _placeholders(text: str) -> list[str]:
    return sorted(re.findall(r"%\(\w+\)s|\{\w+\}", text))


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_marked_text_has_a_translation(lang: str) -> None:
    catalog = gettext.translation(DOMAIN, localedir=locale_dir(), languages=[lang])
    ids = _msgids()
    assert len(ids) > 150
    untranslated = [m for m in sorted(ids) if not catalog.gettext(m).strip()
                    or (catalog.gettext(m) == m and m.lower() not in _SAME_IN[lang])]
    assert untranslated == []
    broken = [m for m in ids if _placeholders(catalog.gettext(m)) != _placeholders(m)]
    assert broken == []


#: words that are spelled the same in the language (checked by hand)
_SAME_IN = {"de": {"version", "status", "website", "name", "%(label)s:"},
            "fr": {"page", "contact", "date", "version", "service", "certifications",
                   "redis (cache)", "nginx (tls, web)", "application"}}


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_catalog_entry_is_translated(lang: str) -> None:
    po = (SRC / "data" / "locale" / lang / "LC_MESSAGES" / "selfhost.po").read_text()
    empty = re.findall(r'\nmsgid ("[^\n]+")\nmsgstr ""\n\n', po + "\n")
    assert empty == []
    # the shipped .mo is compiled from this .po (scripts/compile-catalogs)
    catalog = gettext.translation(DOMAIN, localedir=locale_dir(), languages=[lang])
    assert catalog.gettext("to be confirmed") != "to be confirmed"
    assert len(re.findall(r"^msgid ", po, re.MULTILINE)) == len(
        catalog._catalog)  # type: ignore[attr-defined]


#: English headings, labels and sentences no German or French document may contain
ENGLISH = ("Subprocessor list", "What is a subprocessor", "Subprocessors in this deployment",
           "Data flows", "International transfers", "Not used in this deployment",
           "Changes and your right to object", "Evidence from the live hosts",
           "to be confirmed", "To be confirmed", "Legal entity", "Data location",
           "Transfer safeguards", "Purpose in this deployment", "Data processing agreement",
           "Contact person", "Description of the processing", "Active under",
           "Facts from your catalog overlay", "Why not used", "Third-party access",
           "Stored by", "Processed by", "Annex III", "List of sub-processors", "Controller",
           "Date of this list", "Generated by", "| Customer |", "<th>Customer</th>",
           "Notice date",
           "Change may take effect", "Objections accepted until", "Your right to object",
           "Added", "Removed", "Before", "After", "(none)", "Self-hosted",
           "Only the selected AI provider", "Where personal data goes", "Your infrastructure",
           "on your host", "Your app hosts", "International transfer", "Within residency",
           "the application, through", "AI and machine learning", "E-mail services",
           "Conversations and messages", "Session tokens", "endpoints:", '" of " counter',
           "Data stays within", "Data location to be confirmed", "archive entry",
           "in the list published on", "Subprocessor change notice")


def _documents(lang: Lang) -> dict[str, str]:
    """Every template rendered in ``lang``, with every optional section filled."""
    out: dict[str, str] = {}
    for path in PRESETS:
        doc = build_document(plan(load_profile(path)), on=DAY, lang=lang)
        for fmt in ("md", "html"):
            out[f"{path.stem}.{fmt}"] = render(doc, fmt, lang)
        out[f"{path.stem}-annex.html"] = annex_html(doc, lang)
    full = _everything(lang)
    out["full.md"], out["full.html"] = render(full, "md", lang), render(full, "html", lang)
    out["full-annex.html"] = annex_html(full, lang)
    old = build_document(plan(load_profile(PROFILES_DIR / "air-gapped.yaml")), on=DAY)
    new = build_document(plan(load_profile(PROFILES_DIR / "us-openai.yaml")), on=DAY)
    changed = new.model_copy(update={"subprocessors": [
        s.model_copy(update={"use": s.use.model_copy(update={"data": ["prompts"]})})
        for s in new.subprocessors]})
    for name, (a, b) in {"added": (old, new), "removed": (new, old),
                         "changed": (new, changed), "none": (old, old)}.items():
        notice = compare(a, b, DAY)
        out[f"notice-{name}.md"] = notice.to_markdown(lang)
        out[f"notice-{name}.html"] = notice.to_html(2, lang)
    return out


def _everything(lang: Lang) -> SubprocessorList:
    """A list with evidence, overlay facts and activations of each kind."""
    activations = {
        "openai": Activation(kind="initial-list", entry=1, date=DAY,
                             detail="in the list published on 2026-12-01 (archive entry 1)"),
        "sendgrid": Activation(kind="notice", entry=2, date=DAY,
                               detail="notice 2 of 2026-12-01, effective 2026-12-31 "
                               "(archive entry 2)"),
        "cloudflare": Activation(kind="override", entry=3, date=DAY,
                                 detail="deployed on 2026-12-01 before its notice was "
                                 "effective; reason: Vorfall 42 (archive entry 3)"),
    }
    profile = load_profile(PROFILES_DIR / "split.yaml").model_copy(deep=True)
    doc = build_document(plan(profile), on=DAY, lang=lang,
                         activations=activations,
                         overlay_facts={s: ["address"] for s in activations},
                         evidence=Evidence(collected_at="2026-12-01T10:00:00Z",
                                           tool_version="0.1.0", checks=[EvidenceCheck(
                                               host="app1", check="egress", result="pass",
                                               detail="ok")]))
    return doc


@pytest.mark.parametrize("lang", TRANSLATED)
def test_no_english_fixed_text_is_left_in_a_translated_document(lang: Lang) -> None:
    documents = _documents(lang)
    assert "Active under" not in documents["full.md"]  # the section is there, translated
    left = {(name, text) for name, body in documents.items() for text in ENGLISH
            if text in body}
    assert left == set()


@pytest.mark.parametrize("lang", TRANSLATED)
def test_what_each_kind_of_third_party_gets_is_translated(tmp_path: Path, lang: Lang) -> None:
    prospects = tmp_path / "prospects.csv"
    prospects.write_text(
        "preset,customer.id,customer.residency,ai.provider,"
        "ai.international_transfer_acknowledged,email.provider,monitoring.provider,"
        "cdn.provider,tls.mode\n"
        "eu-anthropic,one,EU,openai,true,sendgrid,datadog,cloudflare,acme\n"
        "eu-anthropic,two,EU,anthropic,true,ses,sentry,cloudfront,acme\n",
        encoding="utf-8")
    result = run_batch(prospects, tmp_path / "out", formats=("md",), on=DAY, lang=lang)
    assert [r.errors for r in result.rows] == [[], []]
    body = "".join((tmp_path / "out" / f"{c}-subprocessors.md").read_text()
                   for c in ("one", "two"))
    assert [text for text in ENGLISH if text in body] == []
    # the purpose and data lines (the catalog's own descriptions stay as given)
    starts = {"de": ("- **Zweck in dieser Installation:**", "- **Verarbeitete Daten:**"),
              "fr": ("- **Finalité dans ce déploiement :**", "- **Données traitées :**")}
    lines = [line for line in body.splitlines() if line.startswith(starts[lang])]
    assert len(lines) == 2 * 10  # five subprocessors in each of the two lists
    for english in ("AI-powered conversation", "conversation messages", "IP addresses",
                    "Send notification e-mails", "Error tracking", "application logs",
                    "Deliver the chat widget", "HTTP requests and responses",
                    "Issue the public TLS certificate", "ACME account contact e-mail",
                    "e-mail addresses", "browser metadata"):
        assert [line for line in lines if english in line] == []
    assert ("IP-Adressen" if lang == "de" else "adresses IP") in "".join(lines)
