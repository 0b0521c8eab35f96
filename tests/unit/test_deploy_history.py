"""The controller's history of deploy runs: redacted, bounded, private."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from selfhost.deploy import history
from selfhost.deploy.events import Failure, HostStats
from selfhost.deploy.redact import Redactor
from selfhost.deploy.runner import RunOutcome

SECRET = "Zq9-long-db-password"


def _outcome(message: str) -> RunOutcome:
    return RunOutcome(status="failed", rc=2, seconds=12.34,
                      stats={"chat1": HostStats(ok=5, failed=1)},
                      failures=[Failure("chat1", "app : Start", "systemd", message, False)])


def test_a_run_is_recorded_redacted_and_private(tmp_path: Path) -> None:
    path = history.history_path(tmp_path / "state")
    run = history.entry(_outcome(f"auth failed for {SECRET}"), check=False, limit=None,
                        tool_version="1.0", now=datetime(2027, 1, 1, tzinfo=UTC))
    history.append(path, run, Redactor({"database_password": SECRET}))
    text = path.read_text()
    [got] = json.loads(text)
    assert (SECRET in text, oct(path.stat().st_mode & 0o777)) == (False, "0o600")
    assert (got["finished"], got["status"], got["rc"], got["stats"]["chat1"]["failed"],
            got["failures"][0]["task"]) == ("2027-01-01T00:00:00Z", "failed", 2, 1,
                                            "app : Start")


def test_only_the_newest_runs_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "runs.json"
    for i in range(history.KEEP + 3):
        history.append(path, {"n": i}, Redactor({}))
    assert [r["n"] for r in history.read(path)] == list(range(3, history.KEEP + 3))


def test_an_unreadable_history_starts_again(tmp_path: Path) -> None:
    path = tmp_path / "runs.json"
    path.write_text("{not json")
    history.append(path, {"n": 1}, Redactor({}))
    assert history.read(path) == [{"n": 1}]
