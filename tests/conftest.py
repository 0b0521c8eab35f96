"""Shared pytest settings: a skipped test fails the run when asked to."""

from __future__ import annotations

import os

import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # CI sets SELFHOST_FAIL_ON_SKIP: a test that skips there hides a missing
    # install step, so it must not pass as green.
    if os.environ.get("SELFHOST_FAIL_ON_SKIP") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped and exitstatus == pytest.ExitCode.OK:
        if reporter:
            reporter.write_line(f"FAILED: {skipped} test(s) skipped; skips fail this run",
                                red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
