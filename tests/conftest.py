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


def pytest_unconfigure(config: pytest.Config) -> None:
    # After pytest's last line, not in the summary above it: a CI log cut to its tail
    # still shows where the time went.
    terminalreporter = config.pluginmanager.get_plugin("terminalreporter")
    if _on_worker[0] or not _file_seconds or terminalreporter is None:
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
    # Heaviest files first (a stable sort: each file's tests stay together, in order).
    items.sort(key=lambda item: -file_weight(item.nodeid.split("::", 1)[0]))


#: seconds each integration file took in a clean-clone run on the 2-core build machine
#: (`time by test file`). The workers take files in this order, heaviest first, and the
#: unit files fill the gaps at the end: ordered by test count (xdist's default), the
#: long integration files with few tests came last and the run ended with one worker
#: on a long file while the others had nothing left.
FILE_SECONDS: dict[str, float] = {
    "tests/integration/test_deploy.py": 1102,
    "tests/integration/test_verify_tamperings.py": 536,
    "tests/integration/test_upgrade.py": 374,
    "tests/integration/test_destroy.py": 325,
    "tests/integration/test_rotate.py": 299,
    "tests/integration/test_upgrade_split.py": 281,
    "tests/integration/test_verify.py": 222,
    "tests/integration/test_egress_scope.py": 192,
    "tests/integration/test_acme.py": 189,
    "tests/integration/test_egress.py": 165,
    "tests/integration/test_backup_restore.py": 156,
    "tests/integration/test_sandbox.py": 145,
    "tests/integration/test_outside_judge.py": 121,
    "tests/integration/test_rotate_ca.py": 116,
    "tests/integration/test_demo.py": 114,
    "tests/integration/test_certs_on_hosts.py": 103,
    "tests/integration/test_release_deploy.py": 80,
    "tests/integration/test_status_drift.py": 71,
    "tests/integration/test_support_bundle.py": 68,
    "tests/integration/test_reconcile_cli.py": 67,
    "tests/integration/test_notice_gate.py": 66,
    "tests/integration/test_deploy_variants.py": 66,
    "tests/integration/test_contract_probe.py": 28,
    "tests/integration/test_release_probe.py": 4,
}
#: a new integration file not yet measured goes early, as a long one
UNMEASURED_INTEGRATION_SECONDS = 600.0


def file_weight(path: str) -> float:
    if path in FILE_SECONDS:
        return FILE_SECONDS[path]
    return UNMEASURED_INTEGRATION_SECONDS if path.startswith("tests/integration/") else 0.0


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """--dist loadfile in collection order, a file handed over only when needed."""
    if config.getvalue("dist") != "loadfile":
        return None
    # imported here: only a run under xdist has it loaded
    from xdist.scheduler import LoadFileScheduling  # type: ignore[import-untyped]

    class HeaviestFirst(LoadFileScheduling):  # type: ignore[misc]
        def _reschedule(self, node: Any) -> None:
            # xdist's own gives a worker its next file while two of its tests are
            # left; here, when only the one it holds back is (a worker runs a test
            # once it knows the next), so a file waits less behind a long test.
            if node.shutting_down:
                return
            if not self.workqueue:
                node.shutdown()
                return
            if self._pending_of(self.assigned_work[node]) > 1:
                return
            self._assign_work_unit(node)

    config.option.loadscopereorder = False
    return HeaviestFirst(config, log)
