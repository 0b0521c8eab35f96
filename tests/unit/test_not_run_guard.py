"""The run fails when a test was skipped, xfailed, xpassed or deselected under CI's flag."""

from __future__ import annotations

from pathlib import Path

import pytest

GUARD = (Path(__file__).parents[1] / "conftest.py").read_text()

CASES = {
    "skip": ("import pytest\n\n@pytest.mark.skip(reason='x')\ndef test_a():\n    pass\n"
             "\ndef test_b():\n    pass\n", [], "1 skipped"),
    "xfail": ("import pytest\n\n@pytest.mark.xfail(reason='x')\ndef test_a():\n"
              "    assert False\n", [], "1 xfailed"),
    "xpass": ("import pytest\n\n@pytest.mark.xfail(reason='x')\ndef test_a():\n"
              "    pass\n", [], "1 xpassed"),
    "deselect": ("def test_a():\n    pass\n\ndef test_b():\n    pass\n", ["-k", "test_a"],
                 "1 deselected"),
}


#: in-process, and as scripts/test runs: two pytest-xdist workers
WORKERS = {"in-process": [], "xdist": ["-n", "2", "--dist", "loadfile"]}


@pytest.mark.parametrize("workers", sorted(WORKERS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_test_that_did_not_run_fails_the_run(pytester: pytest.Pytester,
                                               monkeypatch: pytest.MonkeyPatch,
                                               case: str, workers: str) -> None:
    source, args, says = CASES[case]
    monkeypatch.setenv("SELFHOST_FAIL_ON_SKIP", "1")
    pytester.makeconftest(GUARD.replace('pytest_plugins = ["pytester"]', ""))
    pytester.makepyfile(test_inner=source)
    result = pytester.runpytest_subprocess(*args, *WORKERS[workers])
    assert (result.ret, any(says in line and "FAILED" in line for line in result.outlines)) \
        == (pytest.ExitCode.TESTS_FAILED, True)


@pytest.mark.parametrize("workers", sorted(WORKERS))
def test_a_clean_run_passes(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                            workers: str) -> None:
    monkeypatch.setenv("SELFHOST_FAIL_ON_SKIP", "1")
    pytester.makeconftest(GUARD.replace('pytest_plugins = ["pytester"]', ""))
    pytester.makepyfile(test_inner="def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    assert pytester.runpytest_subprocess(*WORKERS[workers]).ret == pytest.ExitCode.OK


def test_without_the_flag_a_skip_passes(pytester: pytest.Pytester,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SELFHOST_FAIL_ON_SKIP", raising=False)
    pytester.makeconftest(GUARD.replace('pytest_plugins = ["pytester"]', ""))
    pytester.makepyfile(test_inner=CASES["skip"][0])
    assert pytester.runpytest_subprocess().ret == pytest.ExitCode.OK


# -- a test that deploys onto guests must be marked slow -----------------------------

GUESTS = ("import pytest\n\n@pytest.fixture\ndef sandbox_env():\n    return 'state'\n\n"
          "def run_deploy(*_):\n    return 'done'\n\n")
DEPLOYING = {
    "fixture": "@pytest.fixture\ndef deployed(sandbox_env):\n    return run_deploy(1)\n\n"
               "def test_a(deployed):\n    assert deployed\n",
    "helper": "def redeploy():\n    return run_deploy(2)\n\n"
              "def test_a(sandbox_env):\n    assert redeploy()\n",
    "cli": "def test_a(sandbox_env):\n    argv = ['deploy', 'profile.yaml']\n"
           "    assert argv\n",
}


def _collect(pytester: pytest.Pytester, body: str) -> pytest.RunResult:
    pytester.makeini("[pytest]\nmarkers =\n    slow: takes long\n")
    pytester.makeconftest(GUARD.replace('pytest_plugins = ["pytester"]', ""))
    pytester.makepyfile(test_inner=GUESTS + body)
    return pytester.runpytest_subprocess("-q")


@pytest.mark.parametrize("how", sorted(DEPLOYING))
def test_a_deploying_test_without_the_slow_marker_fails_collection(
        pytester: pytest.Pytester, how: str) -> None:
    result = _collect(pytester, DEPLOYING[how])
    assert (result.ret, any("test_inner.py::test_a" in line for line in result.errlines),
            any("not marked slow" in line for line in result.errlines)) == (
        pytest.ExitCode.USAGE_ERROR, True, True)


@pytest.mark.parametrize("how", sorted(DEPLOYING))
def test_a_deploying_test_marked_slow_runs(pytester: pytest.Pytester, how: str) -> None:
    result = _collect(pytester, "pytestmark = pytest.mark.slow\n\n" + DEPLOYING[how])
    assert result.ret == pytest.ExitCode.OK


def test_a_guest_test_that_does_not_deploy_needs_no_marker(pytester: pytest.Pytester) -> None:
    result = _collect(pytester, "def test_a(sandbox_env):\n    assert sandbox_env\n")
    assert result.ret == pytest.ExitCode.OK
