"""egress.scope in the Profile, the Plan, `selfhost plan` and the subprocessor list."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from selfhost.cli.app import main
from selfhost.paths import PROFILES_DIR
from selfhost.plan import fingerprint, plan
from selfhost.profile_io import load_profile
from selfhost.subprocessors.document import build_document
from selfhost.subprocessors.render import render

PRESET = PROFILES_DIR / "us-openai.yaml"
DAY = date(2026, 12, 1)


def _profile(tmp_path: Path, scope: str | None) -> Path:
    path = tmp_path / "profile.yaml"
    extra = "" if scope is None else f"egress:\n  scope: {scope}\n"
    path.write_text(PRESET.read_text() + extra)
    return path


def test_the_default_is_app_and_leaves_the_fingerprint_as_it_was(tmp_path: Path) -> None:
    omitted, explicit = (load_profile(_profile(tmp_path, s)) for s in (None, "app"))
    host = load_profile(_profile(tmp_path, "host"))
    assert (plan(omitted).egress_scope, fingerprint(explicit) == fingerprint(omitted),
            fingerprint(host) == fingerprint(omitted)) == ("app", True, False)


@pytest.mark.parametrize(("text", "message"), [
    ("egress:\n  scope: everything\n",
     "egress.scope: Input should be 'app' or 'host' (use one of those values)"),
    ("egress:\n  scopes: host\n", "egress.scopes: unknown key (did you mean 'scope'?)"),
])
def test_a_bad_scope_is_invalid_input(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text(PRESET.read_text() + text)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert (result.exit_code, message in result.output) == (2, True), result.output


@pytest.mark.parametrize("scope", ["app", "host"])
def test_plan_shows_the_scope(tmp_path: Path, scope: str) -> None:
    path = _profile(tmp_path, scope)
    text = CliRunner().invoke(main, ["plan", str(path)])
    as_json = CliRunner().invoke(main, ["plan", str(path), "--json"])
    assert (f"Egress scope: {scope} (" in text.output,
            json.loads(as_json.output)["egress_scope"]) == (True, scope)


@pytest.mark.parametrize("scope", ["app", "host"])
def test_the_list_states_the_enforced_scope(tmp_path: Path, scope: str) -> None:
    doc = build_document(plan(load_profile(_profile(tmp_path, scope))), on=DAY)
    statement = f"Enforced on the hosts (egress scope: {scope}):"
    other = f"(egress scope: {({'app': 'host', 'host': 'app'})[scope]})"
    texts = {fmt: render(doc, fmt) for fmt in ("md", "html")}  # type: ignore[arg-type]
    assert (json.loads(render(doc, "json"))["deployment"]["egress_scope"],
            {fmt: (statement in t, other in t) for fmt, t in texts.items()}) == (
        scope, {"md": (True, False), "html": (True, False)})


@pytest.mark.parametrize(("lang", "phrase"), [("de", "Egress-Geltungsbereich: host"),
                                               ("fr", "portée du filtrage sortant : host")])
def test_the_statement_is_translated(tmp_path: Path, lang: str, phrase: str) -> None:
    doc = build_document(plan(load_profile(_profile(tmp_path, "host"))), on=DAY, lang=lang)  # type: ignore[arg-type]
    assert phrase in render(doc, "md", lang)  # type: ignore[arg-type]
