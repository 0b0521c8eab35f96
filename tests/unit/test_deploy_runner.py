"""The runner on real ansible-playbook runs against this machine (local connection).

These exercise the whole path from the Plan-free request to ansible-runner and
back: the secret pipe, the event stream, the scan and the clean-up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selfhost.deploy.events import Event
from selfhost.deploy.redact import Hit, Redactor, scan
from selfhost.deploy.runner import (
    LOCAL_TMP,
    RUN_MARK_ENV,
    RUN_PREFIX,
    RunOutcome,
    RunRequest,
    base_dir,
    kill_marked,
    process_env,
    raise_for,
    remove_stale_run_dirs,
    run_playbook,
)
from selfhost.errors import DeployFailed, SelfhostError

SECRET = "runner-test-secret-8c1f0e7a"
ENV = {"SELFHOST_SECRET_DEMO": SECRET}
INVENTORY = {"all": {"hosts": {"local": {"ansible_connection": "local",
                                         "ansible_python_interpreter": sys.executable}}}}


def _playbook(tmp_path: Path, tasks: str) -> Path:
    path = tmp_path / "site.yml"
    path.write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n{tasks}")
    return path


def _run(tmp_path: Path, tasks: str, *, engine: str = "plain", timeout: int = 120,
         keep: Path | None = None) -> tuple[RunOutcome, list[Event]]:
    events: list[Event] = []
    request = RunRequest(playbook=_playbook(tmp_path, tasks), inventory=INVENTORY,
                         extravars={"target": str(tmp_path / "out.txt")}, secret_env=ENV,
                         engine=engine, timeout=timeout, keep_artifacts=keep)  # type: ignore[arg-type]
    return run_playbook(request, Redactor({"demo": SECRET}), events.append), events


WRITE_SECRET = """\
    - name: Write the secret
      ansible.builtin.copy:
        content: "{{ lookup('selfhost_secret', 'SELFHOST_SECRET_DEMO') }}"
        dest: "{{ target }}"
        mode: "0600"
      no_log: true
"""

#: a child of Ansible that outlives the run, as an ssh master kept by ControlPersist does
LEAVE_A_CHILD = """\
    - name: Start a child that stays after the run
      ansible.builtin.shell: >-
        setsid sleep 60 >/dev/null 2>&1 </dev/null & echo $! > {{ target }}.pid
      changed_when: true
    - name: Write this task's own environment
      ansible.builtin.shell: "cat /proc/$$/environ > {{ target }}.env"
      changed_when: true
"""


@pytest.mark.parametrize("engine", ["plain", "mitogen"])
def test_secret_reaches_the_task(tmp_path: Path, engine: str) -> None:
    outcome, _ = _run(tmp_path, WRITE_SECRET, engine=engine)
    assert (outcome.ok, (tmp_path / "out.txt").read_text()) == (True, SECRET)


@pytest.mark.parametrize("engine", ["plain", "mitogen"])
def test_kept_artifacts_hold_no_secret(tmp_path: Path, engine: str) -> None:
    keep = tmp_path / "artifacts"
    _run(tmp_path, WRITE_SECRET, engine=engine, keep=keep)
    assert scan([keep], Redactor({"demo": SECRET})) == []


@pytest.mark.parametrize("engine", ["plain", "mitogen"])
def test_no_child_of_ansible_holds_a_secret_in_its_environment(tmp_path: Path,
                                                               engine: str) -> None:
    outcome, _ = _run(tmp_path, WRITE_SECRET + LEAVE_A_CHILD, engine=engine)
    pid = int((tmp_path / "out.txt.pid").read_text())
    try:
        leftover = Path(f"/proc/{pid}/environ").read_bytes()
    finally:
        os.kill(pid, 9)
    task_env = (tmp_path / "out.txt.env").read_bytes()
    assert (outcome.ok, (tmp_path / "out.txt").read_text(), SECRET.encode() in task_env,
            SECRET.encode() in leftover) == (True, SECRET, False, False)


def test_kept_artifacts_include_job_events(tmp_path: Path) -> None:
    keep = tmp_path / "artifacts"
    _run(tmp_path, WRITE_SECRET, keep=keep)
    assert list(keep.glob("*/job_events/*.json"))


def test_private_dir_is_removed_after_the_run(tmp_path: Path) -> None:
    _run(tmp_path, WRITE_SECRET)
    assert not list(base_dir().glob(f"{RUN_PREFIX}{os.getpid()}-*"))


def test_second_run_reports_no_change(tmp_path: Path) -> None:
    _run(tmp_path, WRITE_SECRET)
    outcome, _ = _run(tmp_path, WRITE_SECRET)
    assert outcome.stats["local"].changed == 0


FAIL = """\
    - name: Refuse
      ansible.builtin.fail:
        msg: "disk full on {{ inventory_hostname }}"
"""


def test_failure_names_host_task_and_message(tmp_path: Path) -> None:
    outcome, _ = _run(tmp_path, FAIL)
    with pytest.raises(DeployFailed, match=r"host local: task 'Refuse' "
                       r"\(ansible.builtin.fail\) failed: disk full on local"):
        raise_for(outcome, 120)


def test_failed_run_checks_status_and_rc(tmp_path: Path) -> None:
    outcome, _ = _run(tmp_path, FAIL)
    assert (outcome.status, outcome.rc != 0, outcome.ok) == ("failed", True, False)


ECHO = """\
    - name: Echo the secret (a role bug)
      ansible.builtin.fail:
        msg: "{{ lookup('selfhost_secret', 'SELFHOST_SECRET_DEMO') }}"
"""


def test_echoed_secret_is_masked_in_the_failure(tmp_path: Path) -> None:
    outcome, _ = _run(tmp_path, ECHO)
    assert SECRET not in outcome.failures[0].message


def test_echoed_secret_is_masked_in_events_shown(tmp_path: Path) -> None:
    # The reporters redact; the raw event must at least carry a masked failure.
    outcome, _ = _run(tmp_path, ECHO)
    assert outcome.failures[0].message == "********"


def test_echoed_secret_in_runner_files_fails_the_deploy(tmp_path: Path) -> None:
    outcome, _ = _run(tmp_path, ECHO)
    with pytest.raises(DeployFailed, match=r"value of demo appeared .*no_log") as info:
        raise_for(outcome, 120)
    assert SECRET not in info.value.message


def test_timeout_stops_the_run(tmp_path: Path) -> None:
    outcome, _ = _run(tmp_path, "    - ansible.builtin.pause:\n        seconds: 60\n", timeout=3)
    with pytest.raises(DeployFailed, match="did not finish within 3 s"):
        raise_for(outcome, 3)


def test_playbook_error_shows_ansibles_output(tmp_path: Path) -> None:
    outcome, _ = _run(tmp_path, "    - name: Bad\n      no.such.module: {}\n")
    with pytest.raises(DeployFailed, match=r"before any task failed:(.|\n)*no\.such\.module"):
        raise_for(outcome, 120)


def test_events_stream_task_by_task(tmp_path: Path) -> None:
    _, events = _run(tmp_path, WRITE_SECRET)
    assert [(e.kind, e.task) for e in events if e.kind in ("task", "result")] == [
        ("task", "Write the secret"), ("result", "Write the secret")]


def test_canceled_run_is_an_interruption() -> None:
    with pytest.raises(SelfhostError, match="interrupted") as info:
        raise_for(RunOutcome(status="canceled", rc=254, seconds=1.0), 60)
    assert info.value.exit_code == 130


def test_a_canceled_runs_staging_copy_in_ansibles_temp_is_no_leak() -> None:
    outcome = RunOutcome(status="canceled", rc=254, seconds=1.0,
                         leaks=[Hit(Path(LOCAL_TMP) / "ansible-local-1x" / ".tmpkey", "tls")])
    with pytest.raises(SelfhostError, match="interrupted") as info:
        raise_for(outcome, 60)
    assert info.value.exit_code == 130


@pytest.mark.parametrize("status", ["canceled", "successful"])
def test_a_secret_in_the_job_events_is_a_leak_even_when_canceled(status: str) -> None:
    outcome = RunOutcome(status=status, rc=0, seconds=1.0,
                         leaks=[Hit(Path("artifacts/deploy/job_events/1-x.json"), "tls")])
    with pytest.raises(DeployFailed, match="value of tls appeared"):
        raise_for(outcome, 60)


def test_a_finished_runs_file_left_in_ansibles_temp_is_a_leak() -> None:
    outcome = RunOutcome(status="successful", rc=0, seconds=1.0,
                         leaks=[Hit(Path(LOCAL_TMP) / "ansible-local-1x" / ".tmpkey", "tls")])
    with pytest.raises(DeployFailed, match="value of tls appeared"):
        raise_for(outcome, 60)


def test_process_env_blanks_the_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELFHOST_PASSPHRASE", "pp")
    assert process_env(Redactor({}), {})["SELFHOST_PASSPHRASE"] == ""


def test_process_env_blanks_variables_holding_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELFHOST_OPENAI_API_KEY", SECRET)
    assert process_env(Redactor({"x": SECRET}), {})["SELFHOST_OPENAI_API_KEY"] == ""


def test_process_env_puts_this_pythons_bin_first() -> None:
    path = process_env(Redactor({}), {})["PATH"]
    assert path.split(os.pathsep)[0] == str(Path(sys.executable).parent)


def test_stale_run_dirs_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / f"{RUN_PREFIX}999999999-abc"
    dead.mkdir()
    live = tmp_path / f"{RUN_PREFIX}{os.getpid()}-abc"
    live.mkdir()
    remove_stale_run_dirs(tmp_path)
    assert (dead.exists(), live.exists()) == (False, True)


def test_timeout_leaves_no_ansible_process_behind(tmp_path: Path) -> None:
    _run(tmp_path, "    - ansible.builtin.pause:\n        seconds: 60\n", timeout=3)
    playbook = str(tmp_path / "site.yml").encode()

    def alive() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if playbook in (entry / "cmdline").read_bytes():
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    # Killed processes may take a moment to be reaped on a busy machine; the paused play
    # would live 60 s, so a deadline of 20 s still tells a kill from none.
    deadline = time.monotonic() + 20
    while (left := alive()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == []


def test_kill_marked_stops_the_processes_of_a_run() -> None:
    proc = subprocess.Popen(["sleep", "60"], env={**os.environ, RUN_MARK_ENV: "run-under-test"})
    killed = kill_marked("run-under-test")
    proc.wait(timeout=10)
    assert killed == [proc.pid]


def test_stale_run_dir_takes_its_orphans_with_it(tmp_path: Path) -> None:
    dead = tmp_path / f"{RUN_PREFIX}999999998-xyz"
    dead.mkdir()
    proc = subprocess.Popen(["sleep", "60"], env={**os.environ, RUN_MARK_ENV: dead.name})
    remove_stale_run_dirs(tmp_path)
    assert proc.wait(timeout=10) == -9
