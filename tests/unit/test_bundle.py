"""support-bundle without hosts: --since, credential shapes, parts, run summaries, archive."""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from selfhost.bundle import parse_since
from selfhost.bundle.parts import Gathered, host_parts
from selfhost.bundle.runs import summaries
from selfhost.bundle.service import _archive, _scrubbed
from selfhost.deploy.redact import MASK, Redactor, Scrubber, encodings, mask_shapes
from selfhost.errors import InvalidInput, SelfhostError
from selfhost.paths import preset_path
from selfhost.plan import plan
from selfhost.profile_io import load_profile

NOW = 1_800_000_000.0
PEM = ("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5ZyzI\n"
       "-----END EC PRIVATE KEY-----\n")


@pytest.mark.parametrize(("value", "ago"), [
    ("24h", 86400), ("90m", 5400), ("7d", 7 * 86400), ("2w", 14 * 86400), ("30s", 30)])
def test_since_takes_a_duration(value: str, ago: int) -> None:
    assert parse_since(value, NOW) == NOW - ago


@pytest.mark.parametrize("value", [
    "2027-01-14T08:00:00Z", "2027-01-14T08:00:00", "2027-01-14T09:00:00+01:00"])
def test_since_takes_a_time_utc_unless_it_says_otherwise(value: str) -> None:
    assert parse_since(value, NOW) == NOW - 86400  # NOW is 2027-01-15T08:00:00Z


@pytest.mark.parametrize(("value", "says"), [
    ("yesterdayish", "not a duration or a time"), ("24 hours", "not a duration or a time"),
    ("2099-01-01", "is in the future")])
def test_since_refuses_what_it_cannot_read(value: str, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_since(value, NOW)
    assert (f"--since {value!r}" in caught.value.message, says in caught.value.message) == (
        True, True)


def test_encodings_include_hex() -> None:
    forms = encodings("pa$$word-0001")
    assert (b"pa$$word-0001".hex() in forms,
            b"pa$$word-0001".hex().upper() in forms) == (True, True)


@pytest.mark.parametrize(("text", "shape", "gone"), [
    (PEM, "private key", "MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5ZyzI"),
    ("DATABASE_URL=postgresql://app:s3cr3t-pw@db:5432/x", "password in a URL", "s3cr3t-pw"),
    ("curl -H 'Authorization: Bearer abcdefghijklmnopqrstuv'", "bearer token",
     "abcdefghijklmnopqrstuv"),
    ("key is sk-ant-api03-abcdefghijklmnopqrstuvwx here", "API key",
     "abcdefghijklmnopqrstuvwx"),
    ("export STRIPE_SECRET=whsec_1234", "credential assignment", "whsec_1234"),
    ('{"api_key": "k-123456"}', "credential in JSON", "k-123456"),
    ("requirepass hunter2hunter2", "server password setting", "hunter2hunter2"),
])
def test_credential_shapes_are_masked(text: str, shape: str, gone: str) -> None:
    masked, counts = mask_shapes(text)
    assert (gone in masked, MASK in masked, counts[shape] >= 1) == (False, True, True)


def test_masking_twice_changes_nothing_more() -> None:
    once, _ = mask_shapes(f"{PEM}TOKEN=abcdef\nhttps://u:pw1234@h/\n")
    assert mask_shapes(once) == (once, Counter())


@pytest.mark.parametrize("text", [
    "ssl_certificate_key /etc/nginx/tls/server.key;", "listen 443 ssl;",
    "Dec 02 10:00:00 host backend-chat[12]: GET /health 200"])
def test_ordinary_config_and_log_lines_are_left_alone(text: str) -> None:
    assert mask_shapes(text) == (text, Counter())


def test_scrubber_masks_known_values_first_and_counts_them_by_name() -> None:
    scrubber = Scrubber(Redactor({"database_password": "Zq9-long-db-password"}))
    text, counts = scrubber.scrub("# old one was Zq9-long-db-password (hex "
                                  f"{b'Zq9-long-db-password'.hex()})")
    assert ("Zq9" in text, counts["database_password"]) == (False, 2)
    assert scrubber.leftovers(text) == []


def test_host_parts_leave_out_secret_files_and_report_failed_commands() -> None:
    the_plan = plan(load_profile(preset_path("eu-anthropic")))
    host = the_plan.hosts[0].name
    listed = str(the_plan.egress_allowlist[0])
    answer = {
        "journal_units": {"rc": 0, "out": "a line\n", "err": ""},
        "journal_tags": {"rc": 0, "out": "", "err": ""},
        "nft": {"rc": 1, "out": "", "err": "Operation not permitted"},
        "packages": {"rc": 0, "out": "ii \tnginx\t1.22\tamd64\n", "err": ""},
        "files": {"/etc/backend-chat/app.env": {"omitted": "holds a secret"},
                  "/etc/nginx/conf.d/backend-chat.conf": {"text": "server {}\n"}},
        "os_release": {"text": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'},
        "current_release": "/opt/backend-chat/releases/abc",
        "proxy_lines": [
            f"{NOW:.3f} 5 127.0.0.1 TCP_TUNNEL/200 10 CONNECT {listed} - HIER_DIRECT/1.2.3.4 -",
            f"{NOW:.3f} 1 127.0.0.1 TCP_DENIED/403 0 CONNECT evil.invalid:443 - HIER_NONE/- -"],
    }
    got = host_parts(the_plan, host, answer, "2027-01-01T00:00:00Z")
    base = f"hosts/{host}"
    assert f"{base}/files/etc/backend-chat/app.env" not in got.parts
    assert got.omitted == {f"{base}/files/etc/backend-chat/app.env": "holds a secret"}
    assert [p.split(":")[1].strip() for p in got.problems] == ["nft list ruleset failed (exit 1)"]
    verdicts = json.loads(got.parts[f"{base}/proxy-verdicts.json"])
    assert {d: (v["listed"], v["contacted"], v["refused"])
            for d, v in verdicts["destinations"].items()} == {
        listed: (True, 1, 0), "evil.invalid:443": (False, 0, 1)}
    assert verdicts["by_status"] == {"TCP_DENIED/403": 1, "TCP_TUNNEL/200": 1}
    versions = json.loads(got.parts[f"{base}/versions.json"])
    assert versions["os"] == "Debian GNU/Linux 12 (bookworm)"


def test_run_summaries_come_from_the_job_events(tmp_path: Path) -> None:
    run = tmp_path / "artifacts" / "ident-1"
    (run / "job_events").mkdir(parents=True)
    (run / "status").write_text("failed")
    (run / "rc").write_text("2")
    events = [
        {"event": "runner_on_failed", "created": "2027-01-01T00:00:00",
         "event_data": {"host": "chat1", "task": "app : Start", "task_action": "systemd",
                        "res": {"msg": "unit failed"}}},
        {"event": "playbook_on_stats",
         "event_data": {"ok": {"chat1": 5}, "failures": {"chat1": 1}, "changed": {}}},
    ]
    for i, event in enumerate(events, 1):
        (run / "job_events" / f"{i}-x.json").write_text(json.dumps(event))
    [got] = summaries([tmp_path / "artifacts"])
    assert (got["status"], got["rc"], got["stats"]["chat1"]["failed"],
            [f["task"] for f in got["failures"]]) == ("failed", "2", 1, ["app : Start"])


def test_the_archive_holds_scrubbed_parts_only_each_0600() -> None:
    gathered = Gathered(parts={"hosts/h/notes.txt": "pw Zq9-long-db-password\nTOKEN=abc123"},
                        problems=["h: ssh said Zq9-long-db-password"])
    scrubber = Scrubber(Redactor({"database_password": "Zq9-long-db-password"}))
    data, masked, problems = _scrubbed(gathered, scrubber)
    blob = _archive("root", data, {"parts": []}, NOW)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        members = {m.name: (m.mode, tar.extractfile(m).read()) for m in tar.getmembers()}
    assert sorted(members) == ["root/hosts/h/notes.txt", "root/manifest.json"]
    assert {mode for mode, _ in members.values()} == {0o600}
    assert b"Zq9" not in members["root/hosts/h/notes.txt"][1]
    assert b"abc123" not in members["root/hosts/h/notes.txt"][1]
    assert dict(masked["hosts/h/notes.txt"]) == {"database_password": 1,
                                                "credential assignment": 1}
    assert "Zq9" not in problems[0]


def test_a_part_the_scrubber_cannot_clean_stops_the_bundle(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    scrubber = Scrubber(Redactor({"k": "Zq9-long-db-password"}))
    monkeypatch.setattr(Scrubber, "scrub", lambda self, text: (text, Counter()))
    with pytest.raises(SelfhostError, match="redaction left k in hosts/h/x"):
        _scrubbed(Gathered(parts={"hosts/h/x": "Zq9-long-db-password"}), scrubber)


def test_the_listing_names_each_part_what_was_masked_what_was_left_out_and_missing() -> None:
    from selfhost.cli.support_bundle import _listing

    text = _listing({
        "customer_id": "acme", "hosts": ["chat1"], "since": "2027-01-14T08:00:00Z",
        "parts": [{"name": "hosts/chat1/nft-ruleset.txt", "bytes": 2048, "masked": {}},
                  {"name": "hosts/chat1/files/etc/x", "bytes": 10,
                   "masked": {"database_password": 2}}],
        "omitted": {"hosts/chat1/files/etc/backend-chat/app.env": "holds a secret"},
        "problems": ["chat2: ssh failed"]})
    assert text.splitlines() == [
        "support bundle of acme (chat1), journal since 2027-01-14T08:00:00Z:",
        "  hosts/chat1/nft-ruleset.txt  2.0 KiB",
        "  hosts/chat1/files/etc/x  10 B  [masked: database_password x2]",
        "  left out: hosts/chat1/files/etc/backend-chat/app.env (holds a secret)",
        "  MISSING: chat2: ssh failed"]
