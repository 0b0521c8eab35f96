"""Notices of change: recording them, their documents, and the gate on deploys.

The gate runs before any host is touched: every deploy here names a sandbox that
does not exist, so a deploy the gate lets through fails next with "no sandbox
named" (exit 2), and one it refuses exits 6 without ever looking for the sandbox.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner, Result
from customer_support import customer_profile
from ruamel.yaml import YAML

from selfhost.cli.app import main
from selfhost.paths import PROFILES_DIR
from selfhost.subprocessors.signing import generate_keys

BASE = PROFILES_DIR / "air-gapped.yaml"
TODAY = "2026-12-02"
NO_SANDBOX = "no sandbox named 'nosuch'"


@pytest.fixture(autouse=True)
def today(monkeypatch: pytest.MonkeyPatch) -> None:
    epoch = int(datetime(2026, 12, 2, 12, tzinfo=UTC).timestamp())
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(epoch))


@pytest.fixture
def key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pair = generate_keys(tmp_path / "sign.key", tmp_path / "sign.pub")
    monkeypatch.setenv("SELFHOST_SIGN_KEY", str(pair.private_key))
    return pair.private_key


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    return customer_profile(tmp_path, BASE)


def edit(profile: Path, **sections: object) -> None:
    data = YAML(typ="safe").load(profile.read_text(encoding="utf-8"))
    data.update(sections)
    YAML().dump(data, profile)


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def state(profile: Path) -> Path:
    return profile.parent / ".selfhost" / "example-air-gapped"


def entries(profile: Path) -> list[dict[str, object]]:
    text = (state(profile) / "subprocessors" / "archive.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def deploy(profile: Path, *extra: str) -> Result:
    return cli("deploy", str(profile), "--sandbox", "nosuch", "--yes", *extra)


@pytest.fixture
def sentry_added(profile: Path, key: Path) -> Path:
    """The air-gapped list published; the profile now adds Sentry."""
    assert cli("subprocessors", "publish", str(profile), "--date", "2026-10-01").exit_code == 0
    edit(profile, monitoring={"provider": "sentry"})
    return profile


def notice(profile: Path, day: str, *extra: str) -> Result:
    return cli("subprocessors", "notice", str(profile), "--date", day, *extra)


# -- recording ------------------------------------------------------------------------

def test_a_notice_needs_a_published_list(profile: Path, key: Path) -> None:
    result = notice(profile, TODAY)
    assert result.exit_code == 2
    assert "no list published yet" in result.stderr


def test_the_notice_dates_follow_the_profiles_terms(sentry_added: Path) -> None:
    edit(sentry_added, notice={"days": 45, "objection_days": 20})
    result = notice(sentry_added, "2026-11-10", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["effective_date"], report["objection_deadline"]) == \
        ("2026-12-25", "2026-11-30")
    recorded = entries(sentry_added)[1]
    content = recorded["content"]
    assert isinstance(content, dict)
    assert content["kind"] == "notice"
    assert content["notice"]["effective_date"] == "2026-12-25"
    assert [s["id"] for s in content["notice"]["added"]] == ["sentry"]
    md, html = (Path(p) for p in report["documents"])
    assert "| Change may take effect on | 2026-12-25 |" in md.read_text(encoding="utf-8")
    page = html.read_text(encoding="utf-8")
    assert "<th>Objections accepted until</th><td>2026-11-30</td>" in page
    assert "<strong>Sentry</strong>" in page


def test_the_same_change_is_announced_once(sentry_added: Path) -> None:
    assert notice(sentry_added, "2026-11-01").exit_code == 0
    again = notice(sentry_added, "2026-11-20")
    assert again.exit_code == 0
    assert "already recorded as entry 2: sent 2026-11-01" in again.stdout
    assert len(entries(sentry_added)) == 2


def test_the_notice_document_in_german_and_again_in_french(sentry_added: Path) -> None:
    result = notice(sentry_added, "2026-11-01", "--lang", "de", "--json")
    assert result.exit_code == 0, result.output
    md, html = (Path(p) for p in json.loads(result.stdout)["documents"])
    assert "| Änderung frühestens wirksam am | 2026-12-01 |" in md.read_text(encoding="utf-8")
    assert "<h2>Ihr Widerspruchsrecht</h2>" in html.read_text(encoding="utf-8")
    # the recorded notice is the same; its documents are written in the language asked for
    again = notice(sentry_added, "2026-11-20", "--lang", "fr")
    assert "already recorded as entry 2: sent 2026-11-01" in again.stdout
    assert "| Prise d'effet possible le | 2026-12-01 |" in md.read_text(encoding="utf-8")
    assert len(entries(sentry_added)) == 2


def test_no_change_needs_no_notice(profile: Path, key: Path) -> None:
    assert cli("subprocessors", "publish", str(profile)).exit_code == 0
    result = notice(profile, TODAY)
    assert result.exit_code == 0
    assert "no notice needed" in result.stdout
    assert len(entries(profile)) == 1


def test_the_feed_carries_the_notice_dates(sentry_added: Path) -> None:
    assert notice(sentry_added, "2026-11-01").exit_code == 0
    feed = feedparser.parse((state(sentry_added) / "subprocessors" / "feed.atom").read_bytes())
    assert not feed.bozo
    newest = feed.entries[0]
    assert newest.title == "Notice: sub-processor change effective 2026-12-01"
    assert newest.summary.splitlines() == [
        "notice of change sent 2026-11-01: effective 2026-12-01, objections until 2026-11-15",
        "+ sentry (Sentry): added"]


def test_the_published_change_carries_its_notices_dates(sentry_added: Path) -> None:
    assert notice(sentry_added, "2026-11-01").exit_code == 0
    assert cli("subprocessors", "publish", str(sentry_added), "--date",
               "2026-12-02").exit_code == 0
    folder = state(sentry_added) / "subprocessors"
    atom = feedparser.parse((folder / "feed.atom").read_bytes())
    published = atom.entries[0]
    assert published.title == "Sub-processor list of 2026-12-02"
    assert published.summary.splitlines() == [
        "+ sentry (Sentry): added",
        "Notice 2 sent 2026-11-01; effective 2026-12-01; objections until 2026-11-15."]
    item = json.loads((folder / "feed.json").read_text(encoding="utf-8"))["items"][0]
    assert item["_selfhost"] == {
        "kind": "list", "archive_entry": 3, "notice_seq": 2, "notice_date": "2026-11-01",
        "effective_date": "2026-12-01", "objection_deadline": "2026-11-15"}


# -- the gate -------------------------------------------------------------------------

def test_an_unannounced_addition_is_refused_before_any_host(sentry_added: Path) -> None:
    result = deploy(sentry_added)
    assert result.exit_code == 6, result.output
    assert "adds or changes subprocessors (+ sentry (Sentry): added)" in result.stderr
    assert "no notice of the change is recorded" in result.stderr
    assert NO_SANDBOX not in result.output
    assert not (state(sentry_added) / "deployment.json").exists()


def test_a_pending_notice_is_named_with_its_date(sentry_added: Path) -> None:
    assert notice(sentry_added, "2026-11-20").exit_code == 0
    result = deploy(sentry_added)
    assert result.exit_code == 6, result.output
    assert "notice 2 of 2026-11-20 makes the change effective on 2026-12-20" in result.stderr


def test_an_effective_notice_lets_the_deploy_through(sentry_added: Path) -> None:
    assert notice(sentry_added, "2026-11-02").exit_code == 0
    result = deploy(sentry_added)
    assert result.exit_code == 2
    assert NO_SANDBOX in result.stderr


def test_a_notice_of_another_change_does_not_count(sentry_added: Path) -> None:
    assert notice(sentry_added, "2026-10-02").exit_code == 0
    edit(sentry_added, monitoring={"provider": "datadog"})
    result = deploy(sentry_added)
    assert result.exit_code == 6
    assert "+ datadog (Datadog): added" in result.stderr


def test_removing_a_subprocessor_needs_no_wait(profile: Path, key: Path) -> None:
    edit(profile, monitoring={"provider": "sentry"})
    assert cli("subprocessors", "publish", str(profile)).exit_code == 0
    edit(profile, monitoring={"provider": "none"})
    result = deploy(profile)
    assert result.exit_code == 2
    assert NO_SANDBOX in result.stderr


def test_a_change_of_what_one_processes_needs_a_notice(profile: Path, key: Path) -> None:
    """Against the list last deployed: there Sentry got less data than now."""
    edit(profile, monitoring={"provider": "sentry"})
    assert cli("subprocessors", "publish", str(profile)).exit_code == 0
    listed = cli("subprocessors", "render", str(profile), "--format", "json")
    deployed = json.loads(listed.stdout)
    deployed["subprocessors"][0]["use"]["data"] = deployed["subprocessors"][0]["use"]["data"][:1]
    (state(profile) / "subprocessors.json").write_text(json.dumps(deployed), encoding="utf-8")
    result = deploy(profile)
    assert result.exit_code == 6
    assert "~ sentry (Sentry): use.data changed" in result.stderr


def test_check_shows_the_notice_status_and_does_not_refuse(sentry_added: Path) -> None:
    assert notice(sentry_added, "2026-11-20").exit_code == 0
    result = deploy(sentry_added, "--check")
    assert "notice gate: notice 2 of 2026-11-20, effective 2026-12-20 (objections until " \
        "2026-12-04): BLOCKED, not yet effective" in result.stdout
    assert result.exit_code == 2
    assert NO_SANDBOX in result.stderr


def test_an_override_needs_a_reason_and_a_key(sentry_added: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    blank = deploy(sentry_added, "--override-notice", " ")
    assert blank.exit_code == 2
    assert "--override-notice needs a reason" in blank.stderr
    monkeypatch.delenv("SELFHOST_SIGN_KEY")
    keyless = deploy(sentry_added, "--override-notice", "security fix")
    assert keyless.exit_code == 2
    assert "needs --sign-key" in keyless.stderr


def test_an_override_is_recorded_only_when_the_deploy_ran(sentry_added: Path) -> None:
    result = deploy(sentry_added, "--override-notice", "security fix")
    assert result.exit_code == 2
    assert NO_SANDBOX in result.stderr
    assert len(entries(sentry_added)) == 1


def test_the_list_names_the_notice_each_subprocessor_became_active_under(
        sentry_added: Path) -> None:
    assert notice(sentry_added, "2026-11-01").exit_code == 0
    edit(sentry_added, monitoring={"provider": "sentry"}, cdn={"provider": "cloudflare"})
    rendered = cli("subprocessors", "render", str(sentry_added), "--format", "json")
    assert rendered.exit_code == 0, rendered.output
    listed = {s["id"]: s["activation"] for s in json.loads(rendered.stdout)["subprocessors"]}
    assert listed["sentry"] == {
        "kind": "notice", "entry": 2, "date": "2026-11-01",
        "detail": "notice 2 of 2026-11-01, effective 2026-12-01 (archive entry 2)"}
    assert listed["cloudflare"] is None
    markdown = cli("subprocessors", "render", str(sentry_added)).stdout
    assert "notice 2 of 2026-11-01, effective 2026-12-01 (archive entry 2)" in markdown


def test_the_first_list_is_what_its_subprocessors_are_active_under(
        profile: Path, key: Path) -> None:
    edit(profile, monitoring={"provider": "sentry"})
    assert cli("subprocessors", "publish", str(profile), "--date", "2026-10-01").exit_code == 0
    rendered = json.loads(cli("subprocessors", "render", str(profile), "--format",
                              "json").stdout)
    assert rendered["subprocessors"][0]["activation"]["detail"] == \
        "in the list published on 2026-10-01 (archive entry 1)"
    # the activation is the archive's record: the published list is still unchanged
    again = cli("subprocessors", "publish", str(profile))
    assert "nothing added" in again.stdout
