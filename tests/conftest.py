"""Shared pytest settings: a test that did not really run fails the run when asked to, and
a test that deploys onto real guests must be marked ``slow``."""

from __future__ import annotations

import ast
import inspect
import os
import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]

#: outcomes that mean a test did not run as written: in CI each one hides a missing
#: install step or a known failure, so none may pass as green
NOT_RUN = ("skipped", "xfailed", "xpassed", "deselected")


#: under pytest-xdist each worker collects and deselects; the controller sees only the
#: reports of what ran, so the workers' deselections are relayed to it (the most any
#: worker deselected: each collects the whole run)
WORKERS_DESELECTED = "selfhost_deselected"
_deselected_by_workers: list[int] = [0]


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items and hasattr(items[0].config, "workeroutput"):
        output = items[0].config.workeroutput
        output[WORKERS_DESELECTED] = output.get(WORKERS_DESELECTED, 0) + len(items)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    output = getattr(node, "workeroutput", None) or {}
    _deselected_by_workers[0] = max(_deselected_by_workers[0],
                                    int(output.get(WORKERS_DESELECTED, 0)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # CI sets SELFHOST_FAIL_ON_SKIP (scripts/test does).
    if os.environ.get("SELFHOST_FAIL_ON_SKIP") != "1" or hasattr(session.config,
                                                                  "workeroutput"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    counts = {kind: len(reporter.stats.get(kind, [])) for kind in NOT_RUN}
    counts["deselected"] += _deselected_by_workers[0]
    found = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
    if found and exitstatus == pytest.ExitCode.OK:
        reporter.write_line(f"FAILED: {found}; with SELFHOST_FAIL_ON_SKIP=1 every test must "
                            "run and pass", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


#: seconds spent in each test file (setup, call and teardown of its tests) and the
#: xdist workers that ran it: the suite's time budget is spent by file, module-scoped
#: guests included, which --durations' per-test lines cannot show
_file_seconds: dict[str, float] = {}
_file_workers: dict[str, set[str]] = {}


_on_worker: list[bool] = [False]


def pytest_configure(config: pytest.Config) -> None:
    # A worker's reports reach the controller too: only the controller counts.
    _on_worker[0] = hasattr(config, "workerinput")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _on_worker[0]:
        return
    name = report.nodeid.split("::", 1)[0]
    _file_seconds[name] = _file_seconds.get(name, 0.0) + report.duration
    node = getattr(report, "node", None)  # the xdist worker that ran it
    workerid = getattr(node, "workerinput", {}).get("workerid", "main")
    _file_workers.setdefault(name, set()).add(str(workerid))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _on_worker[0] or not _file_seconds:
        return
    terminalreporter.section("time by test file")
    for name, seconds in sorted(_file_seconds.items(), key=lambda kv: -kv[1])[:40]:
        workers = ",".join(sorted(_file_workers[name]))
        terminalreporter.write_line(f"{seconds:9.1f}s  {name}  ({workers})")


TESTS = Path(__file__).resolve().parent
#: the fixture every test on real sandbox guests depends on
GUESTS_FIXTURE = "sandbox_env"
#: what deploying looks like in code: the deploy service or its test wrapper, the
#: CLI's deploy command, the playbook run by hand
DEPLOYS = re.compile(r"\b(?:run_deploy|deploy)\(|[\"']deploy[\"']|ansible-playbook")


def _deploys(func: Callable[..., Any], seen: set[Callable[..., Any]]) -> bool:
    """Whether ``func``, or a function of tests/ it calls (however deep), deploys."""
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return False
    if DEPLOYS.search(source):
        return True
    names = getattr(func, "__globals__", {})
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        callee = names.get(node.func.id)
        if (inspect.isfunction(callee) and callee not in seen
                and TESTS in Path(inspect.getfile(callee)).resolve().parents):
            seen.add(callee)
            if _deploys(callee, seen):
                return True
    return False


def _deploying(item: pytest.Item) -> bool:
    """A test on sandbox guests whose own code or any fixture's deploys."""
    if GUESTS_FIXTURE not in getattr(item, "fixturenames", ()):
        return False
    info = getattr(item, "_fixtureinfo", None)
    funcs = [getattr(item, "function", None)]
    if info is not None:
        funcs += [d.func for defs in info.name2fixturedefs.values() for d in defs]
    seen: set[Callable[..., Any]] = set()
    return any(f is not None and _deploys(f, seen) for f in funcs)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Collection-time, so a deploying test that escaped the marker is caught even when
    # `-m "not slow"` would have run it in a quick pass.
    unmarked = sorted({item.nodeid.split("[", 1)[0] for item in items
                       if item.get_closest_marker("slow") is None and _deploying(item)})
    if unmarked:
        raise pytest.UsageError(
            "these tests deploy onto sandbox guests but are not marked slow (add "
            "`pytestmark = pytest.mark.slow` to the module):\n  " + "\n  ".join(unmarked))
