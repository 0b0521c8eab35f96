"""subprocessors render/diff/batch/check-signature."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import click

from selfhost import i18n
from selfhost.cli.options import FILE
from selfhost.envvars import SIGN_KEY_ENV
from selfhost.errors import ExitCode, InvalidInput
from selfhost.paths import PROFILES_DIR, preset_names
from selfhost.subprocessors.files import FORMATS, Format

_DATE = click.DateTime(formats=["%Y-%m-%d"])
_SIGN_KEY = click.option(
    "--sign-key", type=FILE, required=True, envvar=SIGN_KEY_ENV,
    help="Ed25519 private key (selfhost keys generate) that signs the archive entry "
    "(or SELFHOST_SIGN_KEY).")
_OVERLAY = click.option(
    "--catalog-overlay", type=FILE, help="The customer's own vendor facts (YAML; see the "
    "README), laid over the catalog; default: the profile's catalog_overlay.")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
_LANG = click.option(
    "--lang", default=i18n.DEFAULT, show_default=True, metavar="|".join(i18n.LANGUAGES),
    help="Language of the document's fixed texts (headings, labels, sentences); vendor "
    "facts and JSON keys stay as they are.")


def _day(value: datetime | None) -> date:
    from selfhost.subprocessors.render import today

    return value.date() if value is not None else today()


def _dump_json(value: object) -> str:
    from selfhost.subprocessors.document import dump_json

    return dump_json(value)


@click.group(short_help="The GDPR Art. 28 subprocessor list: render, archive, notices, "
             "annex, batch.")
def subprocessors() -> None:
    """The deployment's GDPR Art. 28 subprocessor list, built from its plan."""


@subprocessors.command()
@click.argument("profile", type=FILE)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="md", show_default=True,
              help="md (Markdown), html (standalone, printable, with a data-flow "
              "picture) or json (versioned; schemas/subprocessor-list.v1.schema.json).")
@click.option("--output", "-o", type=FILE, help="Write here (atomically) instead of stdout.")
@click.option("--date", "on", type=_DATE, help="Date of the list (YYYY-MM-DD; default: "
              "the day of SOURCE_DATE_EPOCH if set, else today, UTC). The same profile "
              "and date give byte-identical output.")
@click.option("--sign-key", type=FILE, help="Ed25519 private key (selfhost keys generate): "
              "embed a signature in the JSON.")
@click.option("--detached", is_flag=True, help="With --sign-key: write the signature to "
              "OUTPUT.sig instead (any format).")
@click.option("--verify", "verify_hosts", is_flag=True, help="Reconcile with the live hosts "
              "first (exit 1 naming each difference); on a match the list embeds the evidence.")
@click.option("--inventory", type=FILE, help="With --verify: the hosts' Ansible inventory.")
@click.option("--sandbox", "sandbox_name", metavar="NAME", help="With --verify: the sandbox.")
@_OVERLAY
@click.option("--prospect", is_flag=True, help="PROFILE is a prospect's answers file "
              "(as for selfhost init --answers): only what shapes the list is needed.")
@click.option("--preset", type=click.Choice(preset_names()), help="With --prospect: the "
              "preset the answers are laid over.")
@_LANG
def render(*, profile: Path, fmt: Format, output: Path | None, on: datetime | None,
           sign_key: Path | None, detached: bool, verify_hosts: bool,
           inventory: Path | None, sandbox_name: str | None,
           catalog_overlay: Path | None, prospect: bool, preset: str | None,
           lang: str) -> None:
    """List exactly the third parties PROFILE's deployment sends personal data to."""
    from selfhost.plan import plan
    from selfhost.subprocessors.prospect import prospect_profile
    from selfhost.subprocessors.render import render_profile
    from selfhost.verify.reconcile import reconcile_evidence

    language = i18n.check(lang)
    if preset is not None and not prospect:
        raise InvalidInput("--preset needs --prospect")
    if prospect and (verify_hosts or catalog_overlay is not None):
        raise InvalidInput("--prospect lists a prospect, not a deployment: it takes "
                               "neither --verify nor --catalog-overlay")
    prospect_plan = plan(prospect_profile(profile, preset)) if prospect else None
    evidence = None
    if verify_hosts:
        evidence = reconcile_evidence(profile, inventory=inventory, sandbox=sandbox_name)
        click.echo(f"reconciled with {', '.join(sorted({c.host for c in evidence.checks}))}",
                   err=True)
    result = render_profile(profile, fmt=fmt, on=_day(on), output=output, sign_key=sign_key,
                            detached=detached, evidence=evidence,
                            catalog_overlay_path=catalog_overlay, prospect=prospect_plan,
                            lang=language)
    if output is None:
        click.echo(result.content.decode("utf-8"), nl=False)
        return
    signed = f" (signed with {result.key_id})" if result.key_id else ""
    click.echo(f"wrote {', '.join(str(p) for p in result.written)}{signed}", err=True)


@subprocessors.command()
@click.argument("old", type=FILE)
@click.argument("new", type=FILE)
@click.option("--notice-date", type=_DATE, help="Date the notice is sent (YYYY-MM-DD; "
              "default: today, UTC).")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md",
              show_default=True, help="The notice as Markdown or as JSON.")
@_LANG
@click.pass_context
def diff(ctx: click.Context, *, old: Path, new: Path, notice_date: datetime | None,
         fmt: str, lang: str) -> None:
    """The change notice from OLD to NEW (profiles or JSON lists).

    Exit 0 when no subprocessor changed, 1 when one did.
    """
    from selfhost.subprocessors.diff import diff_files

    language = i18n.check(lang)
    notice = diff_files(old, new, _day(notice_date))
    click.echo(notice.to_json() if fmt == "json" else notice.to_markdown(language), nl=False)
    if notice.has_changes:
        ctx.exit(int(ExitCode.DIFFERENCE))


@subprocessors.command()
@click.argument("prospects", type=FILE)
@click.option("--output-dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("subprocessor-lists"), show_default=True,
              help="Where the lists and summary.csv are written (created if missing).")
@click.option("--format", "formats", type=click.Choice(FORMATS), multiple=True,
              help="Repeat for several (default: md, html and json).")
@click.option("--date", "on", type=_DATE, help="Date of the lists (default: today, UTC).")
@click.option("--profiles-dir", type=click.Path(path_type=Path, file_okay=False),
              default=PROFILES_DIR, help="Where the base presets are.")
@_LANG
@click.pass_context
def batch(ctx: click.Context, *, prospects: Path, output_dir: Path, formats: tuple[Format, ...],
          on: datetime | None, profiles_dir: Path, lang: str) -> None:
    """One list per prospect in PROSPECTS (CSV or YAML: a preset column plus
    dotted profile keys). Exit 2 if any row failed; the others are still written."""
    from selfhost.subprocessors.batch import run_batch

    language = i18n.check(lang)
    result = run_batch(prospects, output_dir, formats=formats or FORMATS, on=_day(on),
                       profiles_dir=profiles_dir, lang=language)
    for row in result.failed:
        for error in row.errors:
            click.echo(error, err=True)
    ok = len(result.rows) - len(result.failed)
    click.echo(f"{ok} of {len(result.rows)} prospects written to {output_dir}; "
               f"{len(result.failed)} failed; summary: {result.summary}")
    if result.failed:
        ctx.exit(int(ExitCode.INVALID))


@subprocessors.command("check-signature")
@click.argument("file", type=FILE)
@click.option("--public-key", type=FILE, required=True,
              help="The signer's public key (the .pub file of selfhost keys generate).")
@click.option("--signature", type=FILE, help="Detached signature (default: FILE.sig if it "
              "exists, else the signature embedded in the JSON).")
def check_signature_command(file: Path, public_key: Path, signature: Path | None) -> None:
    """Exit 0 when FILE is exactly what was signed, 1 when any byte changed."""
    from selfhost.subprocessors.signing import check_signature

    verified = check_signature(file, public_key, signature)
    click.echo(f"{file}: signature valid ({verified.form}, key {verified.key_id})")


@subprocessors.command()
@click.argument("profile", type=FILE)
@_SIGN_KEY
@click.option("--date", "on", type=_DATE, help="Date of the list (YYYY-MM-DD; default: "
              "today, UTC).")
@_OVERLAY
@_JSON
def publish(profile: Path, sign_key: Path, on: datetime | None,
            catalog_overlay: Path | None, as_json: bool) -> None:
    """Append PROFILE's list to the customer's signed, hash-chained archive.

    A list that says the same as the last published one adds nothing. The Atom
    feed and JSON Feed beside the archive are written again after each change.
    """
    from selfhost.subprocessors import archive, publishing

    result = publishing.publish(profile, sign_key, on=_day(on),
                                catalog_overlay=catalog_overlay)
    entry = result.entry
    if as_json:
        click.echo(_dump_json({
            "archive": str(result.archive), "added": entry is not None,
            "seq": entry.seq if entry else None,
            "hash": archive.entry_hash(entry.line()) if entry else None,
            "feeds": [str(p) for p in result.feeds]}), nl=False)
        return
    if entry is None:
        click.echo(f"{result.archive}: unchanged since the last published list; nothing "
                   "added")
        return
    click.echo(f"{result.archive}: published as entry {entry.seq} "
               f"({archive.entry_hash(entry.line())})")
    for path in result.feeds:
        click.echo(f"feed: {path}")


@subprocessors.command()
@click.argument("profile", type=FILE)
@_JSON
def history(profile: Path, as_json: bool) -> None:
    """The archive's entries: date, kind and what changed, oldest first."""
    from selfhost.subprocessors import publishing

    path = publishing.profile_archive(profile)
    items = publishing.history(path, publishing.require_archive(path))
    if as_json:
        click.echo(_dump_json([i.model_dump(mode="json") for i in items]), nl=False)
        return
    for item in items:
        when = item.date or item.recorded_at.date()
        click.echo(f"{item.seq:>4}  {when}  {item.kind:<8}  {item.changes[0]}")
        for line in item.changes[1:]:
            click.echo(f"{'':>26}{line}")


@subprocessors.command("archive-check")
@click.argument("profile", type=FILE)
@click.option("--public-key", type=FILE, required=True,
              help="The signer's public key (the .pub file of selfhost keys generate).")
@_JSON
@click.pass_context
def archive_check(ctx: click.Context, profile: Path, public_key: Path,
                  as_json: bool) -> None:
    """Check every entry's hash link and signature; exit 1 naming the first bad one."""
    from selfhost.subprocessors import archive, publishing
    from selfhost.subprocessors.signing import load_public_key

    path = publishing.profile_archive(profile)
    lines = archive.read_lines(path)
    entries, problem = archive.check_lines(lines, load_public_key(public_key))
    if not lines:
        problem = archive.Problem(line=0, seq=None, why="the archive is empty or missing "
                                  "(publish a list first)")
    if as_json:
        click.echo(_dump_json({
            "archive": str(path), "ok": problem is None, "entries": len(lines),
            "checked": len(entries),
            "first_bad": None if problem is None else {
                "line": problem.line, "seq": problem.seq, "reason": problem.why}}),
            nl=False)
    elif problem is None:
        click.echo(f"{path}: {len(entries)} entries, chain and signatures intact")
    else:
        click.echo(f"{problem.message(path)}; FAILED ({len(entries)} of {len(lines)} "
                   "entries before it check)", err=True)
    if problem is not None:
        ctx.exit(int(ExitCode.DIFFERENCE))


@subprocessors.command()
@click.argument("profile", type=FILE)
@click.option("--format", "fmt", type=click.Choice(["atom", "json"]), default="atom",
              show_default=True, help="Atom (RFC 4287) or JSON Feed 1.1.")
def feed(profile: Path, fmt: str) -> None:
    """Print the feed of the archive's published changes and notices."""
    from selfhost.subprocessors import feeds, publishing

    path = publishing.profile_archive(profile)
    the_feed = publishing.feed(path, publishing.require_archive(path))
    click.echo(feeds.atom(the_feed) if fmt == "atom" else feeds.json_feed(the_feed),
               nl=False)


@subprocessors.command()
@click.argument("profile", type=FILE)
@click.option("--date", "on", type=_DATE, help="Date the notice is sent (YYYY-MM-DD; "
              "default: today, UTC).")
@_SIGN_KEY
@_OVERLAY
@_LANG
@_JSON
def notice(*, profile: Path, on: datetime | None, sign_key: Path, catalog_overlay: Path | None,
           lang: str, as_json: bool) -> None:
    """Record a notice of the change from the last published list to PROFILE's.

    Effective on DATE + notice.days, objections until DATE + notice.objection_days;
    the notice document (md, html) is written beside the archive. Deploys that
    add a subprocessor or change what one processes wait for it.
    """
    from selfhost.subprocessors import notices

    language = i18n.check(lang)
    result = notices.record_notice(profile, sign_key, on=_day(on),
                                   catalog_overlay=catalog_overlay, lang=language)
    n = result.notice
    if as_json:
        click.echo(_dump_json({
            "archive": str(result.archive), "added": result.added, "seq": result.seq,
            "changes": n.has_changes, "notice_date": n.notice_date.isoformat(),
            "effective_date": n.effective_date.isoformat(),
            "objection_deadline": n.objection_deadline.isoformat(),
            "documents": [str(p) for p in result.documents]}), nl=False)
        return
    if not n.has_changes:
        click.echo("no subprocessor changed since the last published list; no notice needed")
        return
    verb = "recorded as" if result.added else "already recorded as"
    click.echo(f"{result.archive}: notice {verb} entry {result.seq}: sent {n.notice_date}, "
               f"effective {n.effective_date}, objections until {n.objection_deadline}")
    for line in n.lines():
        click.echo(f"  {line}")
    for path in result.documents:
        click.echo(f"notice document: {path}")


@subprocessors.command()
@click.argument("profile", type=FILE)
@click.option("--format", "fmt", type=click.Choice(["pdf", "html", "dpv"]), default="pdf",
              show_default=True, help="pdf (printable, A4), html (the same page) or dpv "
              "(W3C Data Privacy Vocabulary, JSON-LD).")
@click.option("--output", "-o", type=FILE, help="Write here (atomically); needed for pdf.")
@click.option("--date", "on", type=_DATE, help="Date of the list (YYYY-MM-DD; default: "
              "today, UTC).")
@_OVERLAY
@_LANG
def annex(*, profile: Path, fmt: str, output: Path | None, on: datetime | None,
          catalog_overlay: Path | None, lang: str) -> None:
    """"Annex III — List of sub-processors" for the DPA, or its DPV JSON-LD export."""
    from selfhost.subprocessors.render import write_annex

    content = write_annex(profile, fmt, output, on=_day(on), overlay=catalog_overlay,
                          lang=i18n.check(lang))
    if content is not None:
        click.echo(content.decode("utf-8"), nl=False)
    else:
        click.echo(f"wrote {output}", err=True)
