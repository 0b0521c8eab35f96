"""ansible-runner events -> what a deploy shows and reports."""

from __future__ import annotations

from typing import Any

import pytest

from selfhost.deploy.events import HIDDEN, Failure, HostStats, failure, module_message, parse


def _result(event: str, res: dict[str, Any], **data: Any) -> dict[str, Any]:
    return {"event": event, "event_data": {"host": "app1", "task": "Install packages",
                                           "role": "common",
                                           "task_action": "ansible.builtin.apt",
                                           "res": res, **data}}


def test_task_start_names_role_and_task() -> None:
    event = parse({"event": "playbook_on_task_start",
                   "event_data": {"task": "Install packages", "role": "common",
                                  "task_action": "ansible.builtin.apt"}})
    assert getattr(event, "task", None) == "common : Install packages"


@pytest.mark.parametrize(("event", "res", "extra", "outcome"), [
    ("runner_on_ok", {"changed": False}, {}, "ok"),
    ("runner_on_ok", {"changed": True}, {}, "changed"),
    ("runner_on_failed", {"msg": "boom"}, {}, "failed"),
    ("runner_on_failed", {"msg": "boom"}, {"ignore_errors": True}, "ignored"),
    ("runner_on_unreachable", {"msg": "no route"}, {}, "unreachable"),
    ("runner_on_skipped", {}, {}, "skipped"),
])
def test_result_outcomes(event: str, res: dict[str, Any], extra: dict[str, Any],
                         outcome: str) -> None:
    parsed = parse(_result(event, res, **extra))
    assert getattr(parsed, "outcome", None) == outcome


def test_failure_names_host_task_module_and_message() -> None:
    parsed = parse(_result("runner_on_failed", {"msg": "No package matching 'x'"}))
    assert parsed is not None
    assert failure(parsed) == Failure("app1", "common : Install packages",
                                      "ansible.builtin.apt", "No package matching 'x'", False)


def test_describe_failed_task() -> None:
    text = Failure("db1", "postgresql : Start", "ansible.builtin.systemd", "unit failed",
                   False).describe()
    assert text == ("host db1: task 'postgresql : Start' (ansible.builtin.systemd) failed: "
                    "unit failed")


def test_describe_unreachable_host() -> None:
    text = Failure("db1", "Gathering Facts", "", "ssh: connect timed out", True).describe()
    assert text == "host db1 is unreachable: ssh: connect timed out"


def test_ignored_error_is_no_failure() -> None:
    parsed = parse(_result("runner_on_failed", {"msg": "x"}, ignore_errors=True))
    assert parsed is not None
    assert failure(parsed) is None


def test_censored_result_says_it_is_hidden() -> None:
    assert module_message({"censored": "the output has been hidden"}) == HIDDEN


@pytest.mark.parametrize(("res", "message"), [
    ({"msg": "", "stderr": "E: broken\n"}, "E: broken"),
    ({"module_stdout": "Traceback"}, "Traceback"),
    ({"results": [{"failed": False}, {"failed": True, "msg": "item 2 failed"}]},
     "item 2 failed"),
])
def test_module_message_picks_the_useful_field(res: dict[str, Any], message: str) -> None:
    assert module_message(res) == message


def test_stats_event_counts_per_host() -> None:
    parsed = parse({"event": "playbook_on_stats", "event_data": {
        "ok": {"app1": 12, "db1": 5}, "changed": {"app1": 3}, "failures": {"db1": 1},
        "dark": {}, "skipped": {"app1": 2}}})
    assert getattr(parsed, "stats", None) == {
        "app1": HostStats(ok=12, changed=3, skipped=2), "db1": HostStats(ok=5, failed=1)}


def test_verbose_output_is_kept() -> None:
    parsed = parse({"event": "verbose", "stdout": "ERROR! the role 'x' was not found"})
    assert getattr(parsed, "message", None) == "ERROR! the role 'x' was not found"


def test_uninteresting_events_are_dropped() -> None:
    assert parse({"event": "runner_on_start", "event_data": {}}) is None


def test_check_mode_diff_is_rendered_unified() -> None:
    parsed = parse(_result("runner_on_ok", {"changed": True, "diff": [
        {"before": "a\nb\n", "after": "a\nc\n", "before_header": "/etc/x",
         "after_header": "/etc/x"}]}))
    assert getattr(parsed, "diff", "").splitlines()[2:] == ["@@ -1,2 +1,2 @@", " a", "-b", "+c"]


def test_prepared_diff_is_kept_as_is() -> None:
    parsed = parse(_result("runner_on_ok", {"changed": True,
                                            "diff": {"prepared": "+ package redis"}}))
    assert getattr(parsed, "diff", "") == "+ package redis"


def test_plain_reporter_redacts_a_diff() -> None:
    import io

    from selfhost.deploy.progress import PlainReporter
    from selfhost.deploy.redact import Redactor

    stream = io.StringIO()
    parsed = parse(_result("runner_on_ok", {"changed": True, "diff": {
        "before": "", "after": "PASSWORD=very-secret-value\n"}}))
    assert parsed is not None
    PlainReporter(stream, Redactor({"p": "very-secret-value"})).event(parsed)
    assert "very-secret-value" not in stream.getvalue()


def test_a_failed_command_is_explained_by_its_own_stderr() -> None:
    res = {"msg": "non-zero return code", "rc": 1, "stdout": "",
           "stderr": "schema 1 -> 2\nmigration failed: relation \"probe_no_such_table\" "
                     "does not exist\n"}
    assert module_message(res) == (
        'exit 1: schema 1 -> 2 / migration failed: relation "probe_no_such_table" does not '
        "exist")
