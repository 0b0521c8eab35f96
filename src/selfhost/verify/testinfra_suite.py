"""The testinfra suite: one pytest test per (check, host), run with pytest as a library.

This is the one module that imports testinfra. :func:`run_suite` calls
``pytest.main`` on this very file with :class:`SuitePlugin`, which parametrizes
:func:`test_check` with the checks and provides the facts fixture. Each host is
asked once per run (one ssh connection, one command collecting every
fact), all hosts at the same time; every test then evaluates its check against
its host's facts.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import testinfra

from selfhost.targets import SshTarget
from selfhost.verify.components import remote_command
from selfhost.verify.contract import AnyCheck, Facts, Outcome

#: the remote collection has its own short timeouts; this bounds a stuck host
REMOTE_TIMEOUT = 120
SSH_DEFAULTS = ("-o", "BatchMode=yes", "-o", "ServerAliveInterval=5",
                "-o", "ServerAliveCountMax=3")

ResultCallback = Callable[[AnyCheck, Outcome], None]


def _host(target: SshTarget) -> Any:
    extra = shlex.join([*SSH_DEFAULTS, *target.ssh_args])
    # controlpersist=0: one command per host, so a control master would only linger.
    return testinfra.get_host(
        f"ssh://{target.user}@{target.address}:{target.port}",
        ssh_identity_file=target.identity_file, ssh_extra_args=extra, controlpersist=0,
        timeout=10, sudo=target.sudo)


def collect(target: SshTarget, spec: dict[str, object]) -> Facts:
    """Every fact ``spec`` asks for, from one host; ``unreachable`` on failure."""
    command = f"timeout {REMOTE_TIMEOUT} {remote_command(spec)}"
    try:
        result = _host(target).run(command)
    except RuntimeError as exc:  # testinfra's ssh backend: ssh itself failed (rc 255)
        detail = getattr(exc.args[0], "stderr", "") if exc.args else ""
        return _unreachable(f"ssh to {target.user}@{target.address}:{target.port} failed"
                            f"{': ' + detail.strip() if detail else ''}")
    if result.rc != 0:
        return _unreachable(f"collecting facts failed (exit {result.rc}): "
                            f"{result.stderr.strip()[-500:]}")
    try:
        raw = json.loads(result.stdout)
    except ValueError:
        raw = None
    if not isinstance(raw, dict):
        return _unreachable("the host's facts are not a JSON object: " + result.stdout[:200])
    return Facts(raw)


def _unreachable(why: str) -> Facts:
    return Facts({"unreachable": why})


def collect_all(targets: dict[str, SshTarget], specs: dict[str, dict[str, object]]
                ) -> dict[str, Facts]:
    """:func:`collect` on every host at once (hosts are independent)."""
    names = sorted(targets)
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        found = pool.map(lambda n: collect(targets[n], specs[n]), names)
        return dict(zip(names, found, strict=True))


class SuitePlugin:
    """Parametrization, the facts fixture and the outcome record of one run."""

    def __init__(self, checks: list[AnyCheck], targets: dict[str, SshTarget],
                 specs: dict[str, dict[str, object]], on_result: ResultCallback | None = None
                 ) -> None:
        self.checks = checks
        self.targets = targets
        self.specs = specs
        self.on_result = on_result
        self.outcomes: dict[str, Outcome] = {}
        self.facts: dict[str, Facts] = {}

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "check" in metafunc.fixturenames:
            metafunc.parametrize("check", self.checks, ids=[c.key for c in self.checks])

    @pytest.fixture(scope="session")
    def host_facts(self) -> dict[str, Facts]:
        self.facts = collect_all(self.targets, self.specs)
        return self.facts

    @pytest.fixture
    def record_outcome(self) -> ResultCallback:
        def record(check: AnyCheck, outcome: Outcome) -> None:
            self.outcomes[check.key] = outcome
            if self.on_result is not None:
                self.on_result(check, outcome)
        return record


def failure_text(check: AnyCheck, outcome: Outcome) -> str:
    """What a failing check says: what, expected, found, fix."""
    return (f"{check.host}: {check.description}\n  expected: {check.expected}\n"
            f"  found:    {outcome.found}\n  fix:      {check.fix}")


def test_check(check: AnyCheck, host_facts: dict[str, Facts],
               record_outcome: ResultCallback,
               record_property: Callable[[str, object], None],
               record_xml_attribute: Callable[[str, object], None]) -> None:
    facts = host_facts[check.host]
    if facts.unreachable is not None:
        outcome = Outcome(False, f"host not checked: {facts.unreachable}")
    else:
        outcome = check.evaluate(facts)
    record_outcome(check, outcome)
    record_xml_attribute("classname", f"{check.component}.{check.host}")
    record_property("component", check.component)
    record_property("expected", check.expected)
    record_property("found", outcome.found)
    if not outcome.passed:
        pytest.fail(failure_text(check, outcome), pytrace=False)


def run_suite(checks: list[AnyCheck], targets: dict[str, SshTarget],
              specs: dict[str, dict[str, object]], junit: Path | None = None,
              on_result: ResultCallback | None = None) -> tuple[dict[str, Outcome],
                                                                 dict[str, Facts]]:
    """Run every check; returns the outcome per check key and the facts per host."""
    plugin = SuitePlugin(checks, targets, specs, on_result)
    with _isolated_config() as workdir:
        args = [str(Path(__file__)), "-c", str(workdir / "pytest.ini"), "--rootdir",
                str(workdir), "-p", "no:cacheprovider", "-p", "no:terminal",
                "--import-mode=importlib", "-o", "junit_family=xunit1",
                "-o", "junit_suite_name=selfhost-verify", "-o", "console_output_style=classic"]
        if junit is not None:
            args += ["--junitxml", str(junit)]
        status = pytest.main(args, plugins=[plugin])
    if status == pytest.ExitCode.INTERRUPTED:
        # pytest swallowed the Ctrl-C; the checks it did not reach did not fail.
        raise KeyboardInterrupt
    missing = [c.key for c in checks if c.key not in plugin.outcomes]
    for key in missing:
        plugin.outcomes[key] = Outcome(False, "the test did not run (pytest could not "
                                              "collect or set it up)")
    return plugin.outcomes, plugin.facts


@contextlib.contextmanager
def _isolated_config() -> Iterator[Path]:
    """An empty pytest.ini in a temporary directory: the caller's own pytest
    configuration (addopts, markers, plugins options) must not change what verify runs."""
    with tempfile.TemporaryDirectory(prefix="selfhost-verify-") as name:
        path = Path(name)
        (path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        yield path
