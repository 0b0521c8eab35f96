"""What `selfhost status` flags from a host's drift status file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from selfhost.status.service import Answer, judge

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
FP = "sha256:abc"


def _stamp(delta: timedelta) -> str:
    return (NOW - delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def _doc(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "checked_at": _stamp(timedelta(minutes=1)), "interval_seconds": 900,
        "units": {"backend-chat.service": "active/running"},
        "checks": [{"id": "app.unit", "passed": True}], "findings": [],
        "record": {"deployed_at": _stamp(timedelta(hours=3)), "tool_version": "0.1.0",
                   "profile_fingerprint": FP, "release": None},
        "certificate": {"not_after": "Mar  1 00:00:00 2027 GMT", "days_left": 89.0},
        "backup": {"last": _stamp(timedelta(hours=2)), "file": "db.gpg", "archives": 1},
        "egress": {"dropped_since_deploy": 0},
    }
    doc.update(over)
    return doc


def _judge(doc: dict[str, Any] | None, timer: str = "active", fingerprint: str = FP,
           components: tuple[str, ...] = ("app", "backup")) -> list[str]:
    return judge("chat1", Answer(timer, doc), fingerprint=fingerprint, components=components,
                 now=NOW).attention


def test_a_healthy_host_needs_nothing() -> None:
    host = judge("chat1", Answer("active", _doc()), fingerprint=FP, components=("backup",),
                 now=NOW)
    assert host.attention == []
    assert host.profile == "in sync"


def test_profile_changed_since_the_deploy() -> None:
    host = judge("chat1", Answer("active", _doc()), fingerprint="sha256:new",
                 components=(), now=NOW)
    assert host.profile == "profile changed since"
    assert any("differs from the deployed one" in a for a in host.attention)


def test_each_finding_is_a_reason() -> None:
    doc = _doc(findings=[{"id": "app.unit", "found": "backend-chat.service inactive/dead",
                          "fix": "x"}])
    assert _judge(doc) == ["app.unit: backend-chat.service inactive/dead"]


def test_stale_check_stopped_timer_and_no_file() -> None:
    stale = _doc(checked_at=_stamp(timedelta(hours=1)))
    assert any("last drift check is" in a for a in _judge(stale))
    assert any("drift timer is inactive" in a for a in _judge(_doc(), timer="inactive"))
    assert any("no drift check has run" in a for a in _judge(None))


def test_certificate_under_a_week_and_an_old_backup() -> None:
    cert = _doc(certificate={"not_after": "x", "days_left": 3.0})
    assert any("expires in 3 days" in a for a in _judge(cert))
    old = _doc(backup={"last": _stamp(timedelta(hours=30)), "file": "f", "archives": 1})
    assert any("last backup is" in a for a in _judge(old))
    # the backup is only judged on the host that makes them
    assert _judge(old, components=("app",)) == []


def test_unreachable_host() -> None:
    host = judge("chat1", Answer(error="ssh to root@10.0.0.5:22 failed: refused"),
                 fingerprint=FP, components=(), now=NOW)
    assert host.attention == ["ssh to root@10.0.0.5:22 failed: refused"]
    assert not host.reachable


def test_a_drained_host_needs_attention_with_the_reason() -> None:
    host = judge("chat1", Answer("active", _doc(), drained="by selfhost for the switch to 2.0"),
                 fingerprint=FP, components=("backup",), now=NOW)
    assert host.attention == [
        "drained (by selfhost for the switch to 2.0): /readyz answers 503, so the load "
        "balancer sends the host no requests; an upgrade that was stopped left it so: run "
        "`selfhost upgrade` or `selfhost rollback` again"]
