"""Shared pytest settings: a test that did not really run fails the run when asked to."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["pytester"]

#: outcomes that mean a test did not run as written: in CI each one hides a missing
#: install step or a known failure, so none may pass as green
NOT_RUN = ("skipped", "xfailed", "xpassed", "deselected")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # CI sets SELFHOST_FAIL_ON_SKIP (scripts/test does).
    if os.environ.get("SELFHOST_FAIL_ON_SKIP") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    counts = {kind: len(reporter.stats.get(kind, [])) for kind in NOT_RUN}
    found = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
    if found and exitstatus == pytest.ExitCode.OK:
        reporter.write_line(f"FAILED: {found}; with SELFHOST_FAIL_ON_SKIP=1 every test must "
                            "run and pass", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
