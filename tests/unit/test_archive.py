"""The subprocessor archive: append-only hash chain, signatures, history and feeds."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import feedparser
import feedparser_rs
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from customer_support import customer_profile
from ruamel.yaml import YAML

from selfhost.cli.app import main
from selfhost.paths import PROFILES_DIR
from selfhost.subprocessors.signing import generate_keys

BASE = PROFILES_DIR / "eu-anthropic.yaml"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    pair = generate_keys(tmp_path / "sign.key", tmp_path / "sign.pub")
    return pair.private_key, pair.public_key


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    return customer_profile(tmp_path, BASE)


def set_monitoring(profile: Path, provider: str) -> None:
    data = YAML(typ="safe").load(profile.read_text(encoding="utf-8"))
    data["monitoring"] = {"provider": provider}
    YAML().dump(data, profile)


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def publish(profile: Path, key: Path, day: str) -> Result:
    return cli("subprocessors", "publish", str(profile), "--sign-key", str(key), "--date", day)


def archive_file(profile: Path) -> Path:
    return profile.parent / ".selfhost" / "example-eu" / "subprocessors" / "archive.jsonl"


def lines(profile: Path) -> list[bytes]:
    return archive_file(profile).read_bytes().splitlines()


@pytest.fixture
def two_lists(profile: Path, keys: tuple[Path, Path]) -> Path:
    """An archive with the first list and a second one that adds Sentry."""
    assert publish(profile, keys[0], "2026-11-01").exit_code == 0
    set_monitoring(profile, "sentry")
    assert publish(profile, keys[0], "2026-11-20").exit_code == 0
    return profile


def check(profile: Path, public: Path, *extra: str) -> Result:
    return cli("subprocessors", "archive-check", str(profile), "--public-key", str(public),
               *extra)


# -- the chain ------------------------------------------------------------------------

def test_an_unchanged_list_adds_nothing(profile: Path, keys: tuple[Path, Path]) -> None:
    first = publish(profile, keys[0], "2026-11-01")
    assert first.exit_code == 0, first.output
    before = archive_file(profile).read_bytes()
    again = publish(profile, keys[0], "2026-11-15")
    assert again.exit_code == 0, again.output
    assert "nothing added" in again.output
    assert archive_file(profile).read_bytes() == before


def test_each_entry_links_the_previous_line_and_is_signed(two_lists: Path,
                                                          keys: tuple[Path, Path]) -> None:
    first, second = lines(two_lists)
    one, two = json.loads(first), json.loads(second)
    assert one["previous_hash"] is None
    assert two["previous_hash"] == "sha256:" + hashlib.sha256(first).hexdigest()
    assert two["content"]["list"]["date"] == "2026-11-20"
    assert [s["id"] for s in two["content"]["list"]["subprocessors"]] == \
        ["anthropic", "sentry"]
    public = load_pem_public_key(keys[1].read_bytes())
    for entry in (one, two):
        signature = base64.b64decode(entry.pop("signature")["value"])
        signed = json.dumps(entry, sort_keys=True, separators=(",", ":"),
                            ensure_ascii=False).encode()
        public.verify(signature, signed)  # type: ignore[union-attr]


def test_an_intact_archive_checks(two_lists: Path, keys: tuple[Path, Path]) -> None:
    result = check(two_lists, keys[1], "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["entries"] == report["checked"] == 2


def _rewrite(profile: Path, new: list[bytes]) -> None:
    archive_file(profile).write_bytes(b"".join(line + b"\n" for line in new))


def _first_bad(profile: Path, public: Path) -> dict[str, Any]:
    result = check(profile, public, "--json")
    assert result.exit_code == 1, result.output
    bad: dict[str, Any] = json.loads(result.stdout)["first_bad"]
    return bad


def test_a_changed_fact_in_an_old_entry_is_named(two_lists: Path,
                                                 keys: tuple[Path, Path]) -> None:
    first, second = lines(two_lists)
    _rewrite(two_lists, [first.replace(b"Anthropic PBC", b"Anthropic Ltd"), second])
    result = check(two_lists, keys[1])
    assert result.exit_code == 1
    assert "archive.jsonl:1: entry 1: the signature does not match" in result.stderr


def test_a_removed_entry_is_named(two_lists: Path, keys: tuple[Path, Path]) -> None:
    _rewrite(two_lists, lines(two_lists)[1:])
    bad = _first_bad(two_lists, keys[1])
    assert (bad["line"], bad["seq"]) == (1, 2)
    assert "sequence number 2 where 1 was expected" in bad["reason"]


def test_an_entry_re_signed_by_another_key_is_named(tmp_path: Path, two_lists: Path,
                                                    keys: tuple[Path, Path]) -> None:
    other = generate_keys(tmp_path / "other.key", tmp_path / "other.pub")
    # the forger rebuilds the whole archive with their own key
    shutil.rmtree(archive_file(two_lists).parent)
    assert publish(two_lists, other.private_key, "2026-11-01").exit_code == 0
    bad = _first_bad(two_lists, keys[1])
    assert bad["seq"] == 1
    assert "not with the given public key" in bad["reason"]


def test_a_reformatted_entry_is_named(two_lists: Path, keys: tuple[Path, Path]) -> None:
    first, second = lines(two_lists)
    pretty = json.dumps(json.loads(second), sort_keys=True, ensure_ascii=False,
                        separators=(", ", ": ")).encode()
    _rewrite(two_lists, [first, pretty])
    bad = _first_bad(two_lists, keys[1])
    assert bad["seq"] == 2
    assert "bytes differ" in bad["reason"]


def test_a_cut_last_line_is_named(two_lists: Path, keys: tuple[Path, Path]) -> None:
    data = archive_file(two_lists).read_bytes()
    archive_file(two_lists).write_bytes(data[:-40])
    bad = _first_bad(two_lists, keys[1])
    assert (bad["line"], bad["seq"]) == (2, None)
    assert "not a JSON object" in bad["reason"]


def test_an_edited_earlier_entry_breaks_the_next_link(
        tmp_path: Path, two_lists: Path, keys: tuple[Path, Path]) -> None:
    """Someone with the key who re-signs an edited entry 1 still breaks entry 2."""
    from selfhost.subprocessors import archive
    from selfhost.subprocessors.signing import load_private_key

    first, second = lines(two_lists)
    entry = archive.Entry.model_validate_json(first)
    edited: list[archive.Entry] = []
    content = entry.content.model_copy(update={"digest": "sha256:" + "0" * 64})
    archive.make_entry(edited, content, load_private_key(keys[0]), entry.recorded_at)
    _rewrite(two_lists, [edited[0].line(), second])
    bad = _first_bad(two_lists, keys[1])
    assert bad["seq"] == 2
    assert "previous-entry hash does not match" in bad["reason"]


def test_publish_refuses_a_damaged_archive_and_leaves_it(
        two_lists: Path, keys: tuple[Path, Path]) -> None:
    first, second = lines(two_lists)
    _rewrite(two_lists, [first.replace(b"Anthropic PBC", b"Anthropic Ltd"), second])
    damaged = archive_file(two_lists).read_bytes()
    set_monitoring(two_lists, "none")
    result = publish(two_lists, keys[0], "2026-12-01")
    assert result.exit_code == 1
    assert "nothing was added to a damaged archive" in result.stderr
    assert archive_file(two_lists).read_bytes() == damaged


def test_a_missing_archive_fails_the_check(profile: Path, keys: tuple[Path, Path]) -> None:
    result = check(profile, keys[1])
    assert result.exit_code == 1
    assert "empty or missing" in result.stderr


# -- history --------------------------------------------------------------------------

def test_history_names_what_each_entry_changed(two_lists: Path) -> None:
    result = cli("subprocessors", "history", str(two_lists), "--json")
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert [(i["seq"], i["kind"], i["date"]) for i in items] == \
        [(1, "list", "2026-11-01"), (2, "list", "2026-11-20")]
    assert items[0]["changes"] == ["first published list: Anthropic"]
    assert items[1]["changes"] == ["+ sentry (Sentry): added"]
    assert items[1]["hash"] == "sha256:" + hashlib.sha256(lines(two_lists)[1]).hexdigest()
    text = cli("subprocessors", "history", str(two_lists))
    assert "2026-11-20  list      + sentry (Sentry): added" in text.stdout


def test_history_before_any_publish_is_an_input_error(profile: Path) -> None:
    result = cli("subprocessors", "history", str(profile))
    assert result.exit_code == 2
    assert "nothing published yet" in result.stderr


# -- feeds ----------------------------------------------------------------------------

def test_the_atom_feed_reads_back(two_lists: Path) -> None:
    path = archive_file(two_lists).parent / "feed.atom"
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "Sub-processors of Example EU Customer " \
        "(backend.chat, self-hosted)"
    assert parsed.feed.author_detail.email == "privacy@example.eu"
    assert [e.title for e in parsed.entries] == ["Sub-processor list of 2026-11-20",
                                                 "Sub-processor list of 2026-11-01"]
    second = lines(two_lists)[1]
    assert parsed.entries[0].id == "urn:sha256:" + hashlib.sha256(second).hexdigest()
    assert parsed.entries[0].summary == "+ sentry (Sentry): added"
    assert datetime(*parsed.entries[0].updated_parsed[:6]) >= \
        datetime(*parsed.entries[1].updated_parsed[:6])


def test_the_json_feed_reads_back(two_lists: Path) -> None:
    path = archive_file(two_lists).parent / "feed.json"
    parsed = feedparser_rs.parse(path.read_bytes())
    assert not parsed.bozo
    assert parsed.version == "json11"
    assert [e.title for e in parsed.entries] == ["Sub-processor list of 2026-11-20",
                                                 "Sub-processor list of 2026-11-01"]
    assert parsed.entries[0].content[0].value == "+ sentry (Sentry): added"
    assert [t.term for t in parsed.entries[0].tags] == ["list"]


def test_the_feed_command_prints_the_same_feed(two_lists: Path) -> None:
    written = (archive_file(two_lists).parent / "feed.json").read_text(encoding="utf-8")
    result = cli("subprocessors", "feed", str(two_lists), "--format", "json")
    assert result.exit_code == 0, result.output
    assert result.stdout == written
