"""`selfhost status` and the drift watch on a real Debian 13 guest (systemd 257 runs the
timer and keeps the journal it writes to): green after a deploy, each tampering reported
within one (short) interval, with its journal line. Debian 12 gets the same timer and
script; the module runs on one release to keep CI within its time budget.

One all-in-one deployment is shared by the module. It is deployed through
``--inventory`` (reaching the sandbox guest as root) so the role knob
``drift_interval_seconds`` can be set as a host var, as a customer would.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from deploy_support import LOOPBACK_HTTPS, PASSPHRASE, SUPPLIED, assert_nothing_changed
from ruamel.yaml import YAML

from selfhost import sandbox as sandbox_mod
from selfhost.cli.app import main
from selfhost.deploy import DeployOptions, deploy
from selfhost.deploy.service import DeployResult
from selfhost.init import InitRequest, run_init
from selfhost.layout import LAYOUT
from selfhost.plan import plan
from selfhost.profile_io import load_profile
from selfhost.targets.inventory import read_hosts
from selfhost.workflows.demo import address_sets

pytestmark = pytest.mark.slow

INTERVAL = 15
#: one interval, the collection itself (a few seconds) and slack for a busy machine
WAIT = INTERVAL * 3 + 60
#: the journal prefix the README documents for log shipping (written out, not imported)
PREFIX = "backend-chat-drift:"
UNLISTED = "drift-test-unlisted.invalid"


@dataclass
class Deployed:
    box: sandbox_mod.Sandbox
    profile: Path
    inventory: Path
    first: DeployResult
    second: DeployResult

    def status(self, *extra: str) -> Result:
        return CliRunner().invoke(main, ["status", str(self.profile), "--inventory",
                                         str(self.inventory), *extra])


def _run(box: sandbox_mod.Sandbox, command: str, timeout: float = 60) -> str:
    argv = box.ssh_command(box.guests[0].name, "sh", "-c", command)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert res.returncode == 0, f"{command}: {res.stderr}"
    return res.stdout


def _checked_at(box: sandbox_mod.Sandbox) -> float:
    out = _run(box, f"cat {LAYOUT.drift_status} 2>/dev/null || echo '{{}}'")
    stamp = json.loads(out).get("checked_at")
    if not stamp:
        return 0.0
    return time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone


def wait_for_check_after(box: sandbox_mod.Sandbox, since: float) -> None:
    """Until the drift watch ran (on its own timer) after ``since``."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if _checked_at(box) > since:
            return
        time.sleep(2)
    pytest.fail(f"no drift check within {WAIT} s (interval {INTERVAL} s):\n"
                + _run(box, "systemctl status backend-chat-drift.timer "
                            "backend-chat-drift.service --no-pager || true"))


@pytest.fixture(scope="module", params=["trixie"])
def deployed(sandbox_factory: sandbox_mod.Sandbox, tmp_path_factory: pytest.TempPathFactory,
             request: pytest.FixtureRequest) -> Deployed:
    release: str = request.param
    work = tmp_path_factory.mktemp(f"status-{release}")
    box = sandbox_factory(f"status-{release[:2]}", 1, release, image="server")  # type: ignore[operator]
    guest = box.guests[0]
    profile = work / "air-gapped.yaml"
    environ = {f"SELFHOST_{k.upper()}": v for k, v in SUPPLIED.items()}
    run_init(InitRequest(output=profile, preset="air-gapped",
                         sets=address_sets("air-gapped", [guest.address]), force=True,
                         passphrase=PASSPHRASE, environ=environ), None, None)
    sandbox_vars = read_hosts(box.inventory)[guest.name]
    inventory = work / "inventory.yml"
    with inventory.open("w") as out:
        YAML(typ="safe").dump({"all": {"hosts": {"chat1": {
            "ansible_host": guest.address, "ansible_user": "root",
            "ansible_ssh_private_key_file": sandbox_vars["ansible_ssh_private_key_file"],
            "ansible_ssh_common_args": sandbox_vars["ansible_ssh_common_args"],
            "drift_interval_seconds": INTERVAL}}}}, out)
    results = [deploy(profile, DeployOptions(inventory=inventory, yes=True,
                                             passphrase=PASSPHRASE))
               for _ in range(2)]
    return Deployed(box, profile, inventory, results[0], results[1])


def test_redeploy_with_the_drift_role_changes_nothing(deployed: Deployed) -> None:
    assert_nothing_changed(deployed.second)


def test_timer_runs_at_the_configured_interval(deployed: Deployed) -> None:
    box = deployed.box
    assert _run(box, "systemctl is-enabled backend-chat-drift.timer").strip() == "enabled"
    timer = _run(box, "systemctl show -p TimersMonotonic backend-chat-drift.timer")
    assert f"OnUnitActiveUSec={INTERVAL}s" in timer, timer


def test_status_is_green_after_deploy(deployed: Deployed) -> None:
    wait_for_check_after(deployed.box, time.time() - 1)
    result = deployed.status("--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    [host] = doc["hosts"]
    assert host["attention"] == []
    assert host["checks_failed"] == []
    assert host["checks_passed"] >= 30
    assert host["profile"] == "in sync"
    assert host["timer"] == "active"
    assert host["units"]["backend-chat.service"] == "active/running"
    assert host["certificate"]["days_left"] > 80
    assert host["egress_denied"] == []
    assert host["egress_dropped"] == 0
    text = deployed.status()
    assert text.exit_code == 0, text.output
    assert "chat1: ok" in text.output
    journal = _run(deployed.box, "journalctl -u backend-chat-drift.service --no-pager -o cat")
    assert f"{PREFIX} ok host=chat1:" in journal


def test_status_is_fast(deployed: Deployed) -> None:
    started = time.monotonic()
    result = deployed.status("--json")
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 5


@dataclass
class Tampered:
    result: Result
    journal: str


TAMPERINGS = {
    # check or finding id -> what a person or process did on the host
    "app.unit": f"systemctl stop {LAYOUT.app_unit}",
    "app.env_file_mode": f"chmod 0644 {LAYOUT.app_env_file}",
    "egress.allowlist": (f"cp -p {LAYOUT.proxy_config} /root/squid.conf.orig && "
                         "sed -i '/^http_access deny all/i acl allow99_host dstdomain -n "
                         "extra.example\\nacl allow99_port port 443\\nhttp_access allow "
                         f"tunnel allow99_host allow99_port' {LAYOUT.proxy_config}"),
    "egress.denied": (f"runuser -u {LAYOUT.app_user} -- python3 -c \"import socket;"
                      "s=socket.create_connection(('127.0.0.1', PORT));"
                      f"s.sendall(b'CONNECT {UNLISTED}:443 HTTP/1.1\\\\r\\\\nHost: {UNLISTED}"
                      ":443\\\\r\\\\n\\\\r\\\\n');print(s.recv(200))\""),
}
UNDO = {
    "app.unit": f"systemctl start {LAYOUT.app_unit}",
    "app.env_file_mode": f"chmod 0600 {LAYOUT.app_env_file}",
    "egress.allowlist": f"mv /root/squid.conf.orig {LAYOUT.proxy_config}",
}


def _readyz(deployed: Deployed) -> str:
    """The status line nginx answers the load balancer's GET /readyz with."""
    domain = plan(load_profile(deployed.profile)).tls.domain
    out = _run(deployed.box, f"python3 -c {shlex.quote(LOOPBACK_HTTPS)} {domain} /readyz")
    return out.splitlines()[0].strip()


def test_a_drained_host_answers_503_on_readyz_and_status_names_it(deployed: Deployed
                                                                   ) -> None:
    assert _readyz(deployed) == "HTTP/1.1 200 OK"
    _run(deployed.box, f"echo 'by selfhost for the switch to 9.9' > {LAYOUT.nginx_drain_flag}")
    try:
        assert _readyz(deployed) == "HTTP/1.1 503 Service Temporarily Unavailable"
        result = deployed.status("--json")
        assert result.exit_code == 1, result.output
        [host] = json.loads(result.output)["hosts"]
        assert host["drained"] == "by selfhost for the switch to 9.9"
        assert [a for a in host["attention"] if a.startswith("drained (")] == [
            "drained (by selfhost for the switch to 9.9): /readyz answers 503, so the load "
            "balancer sends the host no requests; an upgrade that was stopped left it so: "
            "run `selfhost upgrade` or `selfhost rollback` again"]
    finally:
        _run(deployed.box, f"rm -f {LAYOUT.nginx_drain_flag}")
    assert _readyz(deployed) == "HTTP/1.1 200 OK"
    assert deployed.status("--json").exit_code == 0


@pytest.fixture(scope="module")
def tampered(deployed: Deployed) -> Iterator[Tampered]:
    port = plan(load_profile(deployed.profile)).proxy_port
    since = time.time()
    for command in TAMPERINGS.values():
        _run(deployed.box, command.replace("PORT", str(port)))
    time.sleep(1)
    wait_for_check_after(deployed.box, since + 1)
    result = deployed.status("--json")
    journal = _run(deployed.box, "journalctl -u backend-chat-drift.service --no-pager -o cat")
    yield Tampered(result, journal)
    for command in UNDO.values():
        _run(deployed.box, command)


@pytest.mark.parametrize("finding", sorted(TAMPERINGS))
def test_status_reports_each_tampering(tampered: Tampered, finding: str) -> None:
    assert tampered.result.exit_code == 1, tampered.result.output
    [host] = json.loads(tampered.result.output)["hosts"]
    reasons = [a for a in host["attention"] if a.startswith(f"{finding}: ")]
    assert reasons, host["attention"]
    if finding == "egress.denied":
        assert f"{UNLISTED}:443" in reasons[0]
    assert f"{PREFIX} FAIL {finding} host=chat1:" in tampered.journal


def test_status_text_names_the_reasons(deployed: Deployed, tampered: Tampered) -> None:
    result = deployed.status()
    assert result.exit_code == 1
    assert "chat1: needs attention" in result.output
    assert "app.unit: " in result.output
    assert "egress.denied: " in result.output
