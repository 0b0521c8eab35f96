"""`selfhost rotate` on real Debian 12 and 13 guests (the all-in-one air-gapped preset,
with a local database, cache and encrypted backups).

One deployment is rotated with ``--all`` while a loop on the guest requests the
app's /healthz through nginx; the guest is then asked, with its own clients, which
password each service accepts. A second rotation is killed half-way and resumed, and
the deployment is then taken back to an older one's cache users (no reload user) and
deployed again.
Both releases, because what the rotation leans on differs between them: Redis 7.0 and
8.0 (an ACL user with two passwords, reloaded), PostgreSQL 15 and 17.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from deploy_support import (
    PASSPHRASE,
    Deployment,
    ProcessWatcher,
    assert_nothing_changed,
    descendants,
    env_without_secrets,
    https_get_on_host,
    make_profile,
    run_deploy,
    secret_values,
    ssh,
)
from process_secrets import environ_hits, leftover_hits

from conftest import SandboxFactory
from selfhost.deploy import DeployOptions, deploy
from selfhost.deploy.progress import PlainReporter
from selfhost.deploy.redact import Redactor, scan
from selfhost.errors import SelfhostError
from selfhost.rotation import RotateOptions, pending_path, rotate
from selfhost.secrets import load_secrets, secrets_path, unseal

pytestmark = pytest.mark.slow

ROTATED = ("app_secret_key", "backup_key", "cache_password", "database_password")

#: on the guest: GET /healthz through nginx every 0.1 s until the stop file exists
PROBE_LOOP = r"""
import json, os, socket, ssl, sys, time
domain, stop = sys.argv[1], sys.argv[2]
context = ssl.create_default_context()
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
counts, failures = {}, []
deadline = time.monotonic() + 900
while not os.path.exists(stop) and time.monotonic() < deadline:
    data = b""
    try:
        with socket.create_connection(("127.0.0.1", 443), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=domain) as conn:
            conn.sendall(("GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                          % domain).encode())
            while chunk := conn.recv(65536):
                data += chunk
        status = data.split(b" ", 2)[1].decode()
    except (OSError, IndexError) as exc:
        status = type(exc).__name__
    counts[status] = counts.get(status, 0) + 1
    if status != "200":
        # Every failure's time (for the gap's length); the answers of the first few.
        body = data[-400:].decode(errors="replace") if len(failures) < 5 else ""
        failures.append([round(time.time(), 2), status, body])
    time.sleep(0.1)
print(json.dumps({"counts": counts, "failures": failures}))
"""

#: on the guest: does PostgreSQL let the app's role in with the password on stdin?
PG_LOGIN = r"""
import os, subprocess, sys
url = sys.argv[1]
env = dict(os.environ, PGPASSWORD=sys.stdin.read(), PGCONNECT_TIMEOUT="10")
done = subprocess.run(["psql", "--no-psqlrc", "--tuples-only", "--no-align", url,
                       "--command", "SELECT 1"], env=env, capture_output=True, text=True)
print("login ok" if done.returncode == 0 and done.stdout.strip() == "1"
      else "refused: " + done.stderr.strip()[-200:])
"""


@dataclass
class Rotation:
    deployment: Deployment
    before: dict[str, str]
    after: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    output: str = ""
    artifacts: Path | None = None
    processes: set[str] = field(default_factory=set)
    environ_hits: list[str] = field(default_factory=list)
    probe: dict[str, object] = field(default_factory=dict)
    #: when each step began (controller clock, which the guests share)
    steps: dict[str, float] = field(default_factory=dict)
    #: redis-server's main PID and start time before and after the rotation
    cache_before: str = ""
    cache_after: str = ""


def _cache_process(d: Deployment) -> str:
    """Which redis-server runs: a restart changes its PID and start time."""
    return ssh(d.box, d.box.guests[0].name, "systemctl", "show", "--property=MainPID",
               "--property=ActiveEnterTimestampMonotonic", d.plan.layout.redis_unit
               ).stdout.strip()


def _probe_loop(d: Deployment) -> tuple[subprocess.Popen[str], str]:
    stop = f"/run/rotate-probe-stop-{os.getpid()}"
    ssh(d.box, d.box.guests[0].name, "rm", "-f", stop)
    proc = subprocess.Popen(d.box.ssh_command(d.box.guests[0].name, "python3", "-c",
                                              PROBE_LOOP, d.plan.tls.domain, stop),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)  # the loop is running before the rotation starts
    return proc, stop


@pytest.fixture(scope="module", params=["bookworm", "trixie"])
def rotation(sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory,
             request: pytest.FixtureRequest) -> Rotation:
    release: str = request.param
    box = sandbox_factory(f"rot-{release[:2]}", 1, release, image="server")
    work = tmp_path_factory.mktemp(f"rotate-{release}")
    d = run_deploy(Deployment("air-gapped", release, make_profile(work, "air-gapped", box),
                              box), work, label="first")
    d.require()
    result = Rotation(d, before=secret_values(d.profile_path), cache_before=_cache_process(d))
    loop, stop = _probe_loop(d)
    stream = io.StringIO()
    started = time.time()

    def say(line: str) -> None:
        stream.write(line + "\n")
        if line.startswith("rotate: "):
            result.steps[line.split()[1]] = time.time()
    options = RotateOptions(all=True, sandbox=box.name, yes=True, passphrase=PASSPHRASE,
                            keep_artifacts=work / "artifacts-rotate")
    with ProcessWatcher() as watcher:
        try:
            rotate(d.profile_path, options, reporter=lambda r: PlainReporter(stream, r),
                   say=say)
        except SelfhostError as exc:
            result.error = exc.message
    ssh(box, box.guests[0].name, "touch", stop)
    result.cache_after = _cache_process(d)
    out, err = loop.communicate(timeout=60)
    result.probe = json.loads(out) if out.strip() else {"error": err}
    result.output = stream.getvalue()
    result.processes = watcher.seen
    result.artifacts = options.keep_artifacts
    result.after = secret_values(d.profile_path)
    both = {**{f"old_{k}": v for k, v in result.before.items()},
            **{f"new_{k}": v for k, v in result.after.items()}}
    own = {k: v for k, v in both.items() if k.endswith(ROTATED)}
    result.environ_hits = environ_hits(both) + leftover_hits(own, started)
    return result


def _ok(r: Rotation) -> Rotation:
    assert r.error is None, f"the rotation failed:\n{r.error}\n--- output ---\n{r.output[-4000:]}"
    return r


def _pg_login(d: Deployment, password: str) -> str:
    url = next(e.value for e in d.plan.app.env if e.key == "DATABASE_URL")
    assert url is not None
    done = subprocess.run(d.box.ssh_command(d.box.guests[0].name, "python3", "-c", PG_LOGIN,
                                            url), input=password, capture_output=True,
                          text=True, timeout=60, check=False)
    return done.stdout.strip() or done.stderr.strip()


def _redis_login(d: Deployment, password: str) -> list[str]:
    """The cache's replies to AUTH and PING, one per line."""
    cache = d.plan.cache
    done = subprocess.run(d.box.ssh_command(d.box.guests[0].name, "redis-cli", "-h",
                                            cache.listen[0], "-p", str(cache.port),
                                            "--no-auth-warning"),
                          input=f"AUTH {cache.user} {password}\nPING\n", capture_output=True,
                          text=True, timeout=60, check=False)
    return done.stdout.strip().splitlines() or [done.stderr]


def test_rotation_stores_new_values_only_after_the_hosts(rotation: Rotation) -> None:
    r = _ok(rotation)
    changed = sorted(n for n in ROTATED if r.before[n] != r.after[n])
    assert changed == list(ROTATED)
    # Nothing else changed, and no unfinished rotation is left behind.
    assert {k: v for k, v in r.after.items() if k not in ROTATED} == \
        {k: v for k, v in r.before.items() if k not in ROTATED}
    assert not pending_path(r.deployment.profile_path).exists()
    assert secrets_path(r.deployment.profile_path).stat().st_mode & 0o777 == 0o600


def test_requests_fail_only_while_the_switch_restarts_the_app(rotation: Rotation) -> None:
    """The cache reloads its users twice (overlap, settle) without a restart or a
    failed request; the switch's database password change and app restart leave a
    gap of about a second, which only a listening socket kept across the restart
    would close."""
    r = _ok(rotation)
    # A restart of the cache fails requests only when it outlasts the probe's
    # interval: the same process before and after says it did not happen at all.
    assert "MainPID=0" not in r.cache_before, r.cache_before
    assert r.cache_after == r.cache_before, "redis-server was restarted by the rotation"
    counts, failures = r.probe.get("counts"), r.probe.get("failures")
    assert isinstance(counts, dict), r.probe
    assert isinstance(failures, list), r.probe
    assert counts.get("200", 0) > 50, r.probe
    times = [float(f[0]) for f in failures]
    assert not times or max(times) - min(times) <= 3.0, f"the app was down too long: {r.probe}"
    assert list(r.steps) == ["overlap", "switch", "settle"], r.output[-2000:]
    outside = [f for f in failures if not r.steps["switch"] <= f[0] < r.steps["settle"]]
    assert outside == [], f"requests failed outside the switch step: {r.probe}"


def test_database_refuses_the_old_password_and_takes_the_new(rotation: Rotation) -> None:
    r = _ok(rotation)
    d = r.deployment
    old, new = r.before["database_password"], r.after["database_password"]
    assert (_pg_login(d, old).split(":")[0], _pg_login(d, new)) == ("refused", "login ok")


def test_cache_refuses_the_old_password_and_takes_the_new(rotation: Rotation) -> None:
    r = _ok(rotation)
    d = r.deployment
    old, new = r.before["cache_password"], r.after["cache_password"]
    assert _redis_login(d, old)[0].startswith("WRONGPASS")
    assert _redis_login(d, new) == ["OK", "PONG"]


def test_old_values_are_left_nowhere_on_the_host(rotation: Rotation) -> None:
    r = _ok(rotation)
    d = r.deployment
    old = [r.before[n] for n in ROTATED]
    # The cache's configuration holds a SHA-256 of each password it accepts.
    old.append(hashlib.sha256(r.before["cache_password"].encode()).hexdigest())
    done = subprocess.run(d.box.ssh_command(d.box.guests[0].name, "grep", "-rlF", "-f", "-",
                                            "/etc", "/opt", "/srv", "/var/lib/backend-chat"),
                          input="\n".join(old) + "\n", capture_output=True, text=True,
                          timeout=120, check=False)
    assert (done.returncode, done.stdout) == (1, ""), done.stdout or done.stderr
    new_key = r.after["backup_key"]
    key_file = d.plan.layout.backup_key
    shown = ssh(d.box, d.box.guests[0].name, "cat", key_file).stdout
    assert shown.strip() == new_key


def test_neither_value_reaches_artifacts_output_or_processes(rotation: Rotation) -> None:
    r = _ok(rotation)
    values = {**{f"old_{k}": v for k, v in r.before.items()},
              **{f"new_{k}": v for k, v in r.after.items()}}
    redactor = Redactor(values)
    assert r.artifacts is not None
    assert r.artifacts.exists()
    found: list[object] = list(scan([r.artifacts], redactor))
    found += [f"output: {n}" for n in redactor.find(r.output)]
    found += [f"process list: {n}" for line in r.processes for n in redactor.find(line)]
    found += r.environ_hits
    assert found == []


def test_a_deploy_after_the_rotation_changes_nothing(rotation: Rotation, tmp_path: Path
                                                     ) -> None:
    r = _ok(rotation)
    d = r.deployment
    again = run_deploy(Deployment(d.preset, d.release, d.profile_path, d.box), tmp_path,
                       label="after-rotate")
    assert_nothing_changed(again.require())


def test_a_rotation_killed_half_way_is_finished_by_the_next(rotation: Rotation) -> None:
    d = _ok(rotation).deployment
    before = load_secrets(d.profile_path, passphrase=PASSPHRASE)["cache_password"]
    command = [sys.executable, "-m", "selfhost.cli.app", "rotate", str(d.profile_path),
               "--secret", "cache_password", "--sandbox", d.box.name, "--yes"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env_without_secrets())
    assert proc.stdout is not None
    watchdog = threading.Timer(600, proc.kill)
    watchdog.start()
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("rotate: switch step"):
                break
    finally:
        watchdog.cancel()
    assert seen, "the rotation printed nothing"
    assert seen[-1].startswith("rotate: switch step"), "".join(seen)[-3000:]
    for pid in reversed(descendants(proc.pid)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # Cut after the cache took the new password beside the old: the secrets file
    # still holds the old one, the pending file the new, and the app still serves.
    assert load_secrets(d.profile_path, passphrase=PASSPHRASE)["cache_password"] == before
    waiting = pending_path(d.profile_path)
    pending = unseal(waiting.read_bytes(), waiting, passphrase=PASSPHRASE)["cache_password"]
    assert pending != before
    assert (_redis_login(d, before), _redis_login(d, pending)) == (["OK", "PONG"],) * 2
    status, body = https_get_on_host(d, d.plan.hosts[0].name, "/healthz")
    assert (status, body["status"]) == (200, "ok")

    done = subprocess.run([sys.executable, "-m", "selfhost.cli.app", "rotate",
                           str(d.profile_path), "--sandbox", d.box.name, "--yes"],
                          capture_output=True, text=True, env=env_without_secrets(),
                          timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Resume the rotation of" in done.stdout
    after = load_secrets(d.profile_path, passphrase=PASSPHRASE)["cache_password"]
    assert after == pending
    assert not pending_path(d.profile_path).exists()
    assert _redis_login(d, before)[0].startswith("WRONGPASS")
    assert _redis_login(d, after) == ["OK", "PONG"]
    status, body = https_get_on_host(d, d.plan.hosts[0].name, "/healthz")
    assert (status, body["status"]) == (200, "ok")


#: on the guest, as an older selfhost left a deployment: no reload user in the ACL file
#: or the running server, and no password file for it (its password goes from the file
#: to redis-cli's stdin, never into an argv)
FORGET_RELOAD_USER = r"""
set -e
acl={acl}; secret={secret}
line=$(grep -F -- '+acl|load' "$acl")
sed -i '/+acl|load/d' "$acl"
{{ printf 'AUTH %s ' "$(echo "$line" | cut -d' ' -f2)"; cat "$secret"; printf '\nACL LOAD\n'; }} \
  | redis-cli -h {host} -p {port} --no-auth-warning
rm "$secret"
"""


def test_an_older_deployment_without_the_reload_user_is_restarted_into_it(
        rotation: Rotation, tmp_path: Path) -> None:
    d = _ok(rotation).deployment
    layout, cache, guest = d.plan.layout, d.plan.cache, d.box.guests[0].name
    forgot = ssh(d.box, guest, "bash", "-c", FORGET_RELOAD_USER.format(
        acl=layout.redis_acl_file, secret=layout.redis_reload_password_file,
        host=cache.listen[0], port=cache.port))
    assert forgot.stdout.split() == ["OK", "OK"], forgot.stdout + forgot.stderr
    on_host = ("grep -c -F -- '+acl|load' " + layout.redis_acl_file + "; test -e "
               + layout.redis_reload_password_file + "; echo $?")
    assert ssh(d.box, guest, "sh", "-c", on_host).stdout.split() == ["0", "1"]
    options = {"sandbox": d.box.name, "yes": True, "passphrase": PASSPHRASE}

    # A dry run without the password file: it says the users change and makes nothing.
    preview = deploy(d.profile_path, DeployOptions(check=True, **options))
    assert preview.changed > 0
    assert ssh(d.box, guest, "sh", "-c", on_host).stdout.split() == ["0", "1"]

    # The deploy: the server does not know the reload user, so ACL LOAD is refused and
    # Redis restarts into the new users (a new main PID), then serves the app's user.
    before = _cache_process(d)
    deploy(d.profile_path, DeployOptions(**options))
    assert _cache_process(d) != before
    assert ssh(d.box, guest, "sh", "-c", on_host).stdout.split() == ["1", "0"]
    mode = ssh(d.box, guest, "stat", "-c", "%a %U", layout.redis_reload_password_file)
    assert mode.stdout.split() == ["600", "root"]
    current = load_secrets(d.profile_path, passphrase=PASSPHRASE)["cache_password"]
    assert _redis_login(d, current) == ["OK", "PONG"]
    status, body = https_get_on_host(d, d.plan.hosts[0].name, "/healthz")
    assert (status, body["status"]) == (200, "ok")
    again = run_deploy(Deployment(d.preset, d.release, d.profile_path, d.box), tmp_path,
                       label="after-old-acl")
    assert_nothing_changed(again.require())
