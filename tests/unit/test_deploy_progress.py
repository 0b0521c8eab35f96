"""What a deploy prints: live bar or plain lines, always without secret values."""

from __future__ import annotations

import io

from rich.console import Console

from selfhost.deploy.events import Event, HostStats
from selfhost.deploy.progress import (
    PlainReporter,
    RichReporter,
    reporter_for,
    summary_table,
)
from selfhost.deploy.redact import Redactor

SECRET = "progress-secret-value-42"
FAILED = Event("result", task="app : Start", host="app1", outcome="failed",
               action="ansible.builtin.systemd", message=f"env was PASSWORD={SECRET}")


def test_plain_lines_name_outcome_host_and_task() -> None:
    stream = io.StringIO()
    PlainReporter(stream, Redactor({})).event(
        Event("result", task="common : Install", host="app1", outcome="changed"))
    assert stream.getvalue().split() == ["changed", "app1", "common", ":", "Install"]


def test_plain_reporter_masks_a_secret_in_a_failure() -> None:
    stream = io.StringIO()
    PlainReporter(stream, Redactor({"x": SECRET})).event(FAILED)
    assert SECRET not in stream.getvalue()


def test_terminal_reporter_masks_a_secret_in_a_failure() -> None:
    stream = io.StringIO()
    reporter = RichReporter(Console(file=stream, force_terminal=True), Redactor({"x": SECRET}))
    reporter.event(Event("task", task=f"task mentioning {SECRET}"))
    reporter.event(FAILED)
    reporter.close()
    assert SECRET not in stream.getvalue()


def test_skipped_results_are_not_listed_in_plain_output() -> None:
    stream = io.StringIO()
    PlainReporter(stream, Redactor({})).event(
        Event("result", task="t", host="h", outcome="skipped"))
    assert stream.getvalue() == ""


def test_a_stream_that_is_not_a_terminal_gets_plain_lines() -> None:
    assert isinstance(reporter_for(io.StringIO(), Redactor({})), PlainReporter)


def test_summary_lists_every_host_with_its_counts() -> None:
    stream = io.StringIO()
    Console(file=stream, width=100).print(summary_table(
        {"db1": HostStats(ok=5), "app1": HostStats(ok=9, changed=2, failed=1)}, 12.34,
        check=False))
    rows = [line.split() for line in stream.getvalue().splitlines() if "app1" in line
            or "db1" in line]
    assert rows == [["│", "app1", "│", "9", "│", "2", "│", "1", "│", "0", "│", "0", "│"],
                    ["│", "db1", "│", "5", "│", "0", "│", "0", "│", "0", "│", "0", "│"]]
