"""The one module that runs Ansible (through ansible-runner).

Where things go, and why:

* The private data dir is a fresh 0700 directory, in memory (``/dev/shm``)
  when the machine has it, and is removed after every run; a run killed
  outright leaves it behind, so the next run removes directories whose
  process is gone.
* Inventory and extra vars are written there: neither holds a secret.
* Secrets go to ansible-playbook through a named pipe and the ``launcher``
  module, which hands them on in a memory file (never an environment, which
  ssh masters and other children would inherit and keep after the run), never
  through ``envvars`` (which ansible-runner copies into ``artifacts/*/command``
  in plain text), argv or a file.
* ``ANSIBLE_LOCAL_TEMP`` points inside the private dir, so even a transient
  file Ansible renders on the controller lives and dies there.
* Every process of a run carries ``SELFHOST_DEPLOY_RUN=<its dir name>`` in
  its environment. Ansible's workers leave the runner's process group, so a
  timed-out or cancelled run, or one whose caller was killed, can leave them
  behind; they are found by that mark and stopped (at the end of the run, or
  by the next run when it removes the dead run's directory).
* Before the directory goes, every file in it is scanned for every secret
  value. A hit fails the deploy (naming the secret and the file, never the
  value). Artifacts are kept only on request, and only after a clean scan.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import ansible_runner
from ansible_runner.exceptions import AnsibleRunnerException

from selfhost.deploy import launcher
from selfhost.deploy.engine import Engine, ansible_env
from selfhost.deploy.events import Event, Failure, HostStats, failure, parse
from selfhost.deploy.redact import Hit, Redactor, scan
from selfhost.envvars import PASSPHRASE_ENV
from selfhost.errors import DeployFailed, ExitCode, SelfhostError

if TYPE_CHECKING:
    from selfhost.deploy.progress import Reporter

RUN_PREFIX = "selfhost-run-"
RUN_MARK_ENV = "SELFHOST_DEPLOY_RUN"
#: Ansible's local temporary files, inside the run's private dir
LOCAL_TMP = "ansible-tmp"
_RUN_DIR = re.compile(rf"^{RUN_PREFIX}(\d+)-")
_MEMORY_DIR = Path("/dev/shm")
#: output lines kept to explain a run that failed without a failed task
_TAIL = 15


@dataclass(frozen=True)
class RunRequest:
    playbook: Path
    inventory: dict[str, Any]
    extravars: dict[str, Any]
    #: ``SELFHOST_SECRET_*`` names and values for the ``selfhost_secret`` lookup
    secret_env: Mapping[str, str] = field(repr=False)
    engine: Engine = "mitogen"
    check: bool = False
    limit: str | None = None
    timeout: int = 3600
    #: copy the runner's artifacts here after a clean scan (None: keep nothing)
    keep_artifacts: Path | None = None


@dataclass
class RunOutcome:
    status: str
    rc: int
    seconds: float
    stats: dict[str, HostStats] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    output_tail: list[str] = field(default_factory=list)
    leaks: list[Hit] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0 and not self.leaks


def base_dir() -> Path:
    """Memory-backed when possible: what never reaches a disk cannot be recovered from it."""
    if _MEMORY_DIR.is_dir() and os.access(_MEMORY_DIR, os.W_OK | os.X_OK):
        return _MEMORY_DIR
    return Path(tempfile.gettempdir())


def kill_marked(run: str) -> list[int]:
    """SIGKILL every process whose environment marks it as part of ``run``."""
    mark = f"{RUN_MARK_ENV}={run}".encode()
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if mark not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            os.kill(int(entry.name), signal.SIGKILL)
            killed.append(int(entry.name))
        except (OSError, ProcessLookupError):
            continue
    return killed


def remove_stale_run_dirs(base: Path) -> list[Path]:
    """Private dirs of runs whose process no longer exists (killed before cleanup),
    and whatever of those runs is still running."""
    removed = []
    for entry in base.glob(f"{RUN_PREFIX}*"):
        match = _RUN_DIR.match(entry.name)
        if not match or not entry.is_dir() or entry.stat().st_uid != os.getuid():
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            kill_marked(entry.name)
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        except PermissionError:
            continue
    return removed


def process_env(redactor: Redactor, extra: Mapping[str, str]) -> dict[str, str]:
    """``envvars`` for the runner: Ansible settings, PATH, and blanks over anything in
    our own environment that holds a secret (the runner copies its whole environment
    into its artifacts)."""
    env = dict(extra)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", os.defpath)])
    for name, value in os.environ.items():
        if name == PASSPHRASE_ENV or name.startswith("SELFHOST_SECRET_") or (
                value and redactor.find(value)):
            env[name] = ""
    return env


class _SecretFeeder:
    """Writes the secrets once into the named pipe, when the launcher opens it."""

    def __init__(self, fifo: Path, secrets: Mapping[str, str]) -> None:
        self._fifo = fifo
        self._payload = json.dumps(dict(secrets)).encode()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, name="secrets-feeder", daemon=True)

    def __enter__(self) -> _SecretFeeder:
        os.mkfifo(self._fifo, 0o600)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._fifo.unlink(missing_ok=True)

    def _feed(self) -> None:
        while not self._stop.is_set():
            try:
                # Non-blocking open fails with ENXIO until a reader has the pipe open.
                fd = os.open(self._fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    return
                time.sleep(0.02)
                continue
            try:
                os.set_blocking(fd, True)
                view = memoryview(self._payload)
                while view:
                    view = view[os.write(fd, view):]
            except OSError:
                pass
            finally:
                os.close(fd)
                self._fifo.unlink(missing_ok=True)
            return


@contextlib.contextmanager
def _cancel_on_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM ask the runner to stop ansible-playbook instead of orphaning it."""
    cancel = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield cancel
        return

    def handler(_signum: int, _frame: FrameType | None) -> None:
        cancel.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield cancel
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _run(**kwargs: Any) -> Any:
    try:
        return ansible_runner.run(**kwargs)
    except AnsibleRunnerException as exc:
        raise DeployFailed(f"ansible-runner could not start the playbook: {exc}") from None


def _cmdline(request: RunRequest) -> str:
    args = ["-m", launcher.__name__]
    if request.check:
        args += ["--check", "--diff"]
    # With a custom binary the runner leaves the playbook to the command line.
    args.append(str(request.playbook))
    return shlex.join(args)


def run_playbook(request: RunRequest, redactor: Redactor,
                 on_event: Callable[[Event], None]) -> RunOutcome:
    """Run the playbook once; always returns the outcome (status, rc, stats, failures,
    leaks) and never leaves the private data dir behind."""
    base = base_dir()
    remove_stale_run_dirs(base)
    private = Path(tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-", dir=base))
    stats: dict[str, HostStats] = {}
    failures: list[Failure] = []
    tail: list[str] = []

    def handle(raw: dict[str, Any]) -> bool:
        event = parse(raw)
        if event is None:
            return True
        if event.kind == "stats":
            stats.update(event.stats)
        elif event.kind == "output":
            tail.extend(redactor.redact(line) for line in event.message.splitlines()
                        if line.strip())
            del tail[:-_TAIL]
        found = failure(event)
        if found is not None:
            failures.append(replace(found, message=redactor.redact(found.message)))
        on_event(event)
        return True

    started = time.monotonic()
    try:
        (private / "env").mkdir(mode=0o700)
        extravars = private / "env" / "extravars"
        extravars.write_text(json.dumps(request.extravars))
        extravars.chmod(0o600)
        local_tmp = private / LOCAL_TMP
        local_tmp.mkdir(mode=0o700)
        settings = ansible_env(request.engine, request.playbook.parent / "ansible.cfg")
        settings["ANSIBLE_LOCAL_TEMP"] = str(local_tmp)
        settings[launcher.FIFO_ENV] = str(private / "secrets.fifo")
        settings[RUN_MARK_ENV] = private.name
        with _SecretFeeder(private / "secrets.fifo", request.secret_env), \
                _cancel_on_signals() as cancel:
            result = _run(
                private_data_dir=str(private),
                project_dir=str(request.playbook.parent),
                playbook=str(request.playbook),
                inventory=request.inventory,
                envvars=process_env(redactor, settings),
                suppress_env_files=True,
                binary=sys.executable,
                cmdline=_cmdline(request),
                limit=request.limit,
                timeout=request.timeout,
                quiet=True,
                ident="deploy",
                event_handler=handle,
                cancel_callback=cancel.is_set,
            )
        if result.status != "successful":
            kill_marked(private.name)
        outcome = RunOutcome(status=str(result.status), rc=int(result.rc or 0),
                             seconds=time.monotonic() - started, stats=stats,
                             failures=failures, output_tail=tail)
        if result.rc is None:
            outcome.rc = -1
        outcome.leaks = [Hit(h.path.relative_to(private), h.secret)
                         for h in scan([private], redactor)]
        if request.keep_artifacts is not None and not outcome.leaks:
            shutil.copytree(private / "artifacts", request.keep_artifacts, dirs_exist_ok=True)
        return outcome
    finally:
        shutil.rmtree(private, ignore_errors=True)


def run_shown(request: RunRequest, redactor: Redactor,
              reporter: Callable[[Redactor], Reporter] | None,
              after: Callable[[RunOutcome], None] | None = None) -> RunOutcome:
    """:func:`run_playbook` with its events on the progress display ``reporter``
    makes (closed however the run ends), then :func:`raise_for` its outcome.

    ``after`` sees every outcome that ended, failed ones too (the run history)."""
    shown = reporter(redactor) if reporter is not None else None

    def on_event(event: Event) -> None:
        if shown is not None:
            shown.event(event)

    try:
        outcome = run_playbook(request, redactor, on_event)
    finally:
        if shown is not None:
            shown.close()
    if after is not None:
        after(outcome)
    raise_for(outcome, request.timeout)
    return outcome


def raise_for(outcome: RunOutcome, timeout: int) -> None:
    """A :class:`SelfhostError` for every way a run can fail; nothing for success."""
    leaks = outcome.leaks
    if outcome.status == "canceled":
        # A task cut mid-way leaves the staging copy of what it was handing over (a
        # key's content) in Ansible's local temp, which it would have removed itself;
        # the private dir goes with it. Anything elsewhere is still a role's leak.
        leaks = [h for h in leaks if h.path.parts[:1] != (LOCAL_TMP,)]
    if leaks:
        names = ", ".join(sorted({h.secret for h in leaks}))
        files = ", ".join(sorted({str(h.path) for h in leaks}))
        raise DeployFailed(
            f"the value of {names} appeared in the runner's files ({files}); they were "
            "removed, but a task that handles a secret is missing `no_log: true` "
            "(fix the role)")
    if outcome.status == "canceled":
        raise SelfhostError("the deployment was interrupted; run it again to converge",
                            exit_code=ExitCode.INTERRUPTED)
    if outcome.status == "timeout":
        raise DeployFailed(f"the deployment did not finish within {timeout} s and was "
                           "stopped; run it again (it converges), or look at the slow host")
    if outcome.status == "successful" and outcome.rc == 0:
        return
    if outcome.failures:
        lines = [f.describe() for f in outcome.failures]
        raise DeployFailed("the deployment failed:\n  " + "\n  ".join(lines))
    detail = "\n  ".join(outcome.output_tail) or "no output"
    raise DeployFailed(f"ansible-playbook ended with status {outcome.status} (rc "
                       f"{outcome.rc}) before any task failed:\n  {detail}")
