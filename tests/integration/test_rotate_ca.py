"""`selfhost certs rotate-ca` on a real Debian 12 guest (the all-in-one air-gapped
preset, whose nginx serves a certificate of the internal CA).

The CLI is run as a user runs it, one phase at a time (``--stop-after``, then a
plain run that resumes): before the rotation and after each phase ``openssl
s_client`` on the guest connects to nginx's TLS port trusting only the old CA,
only the new CA, and the host's ``ca.crt``. A loop on the guest requests
/healthz through nginx the whole time, trusting the ``ca.crt`` of the moment
(read again for every request), and must see no failed request. After the
rotation the old CA key is in no file on the controller or the guest, verify
passes, and a second deploy changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from deploy_support import (
    PASSPHRASE,
    Deployment,
    assert_nothing_changed,
    make_profile,
    run_deploy,
    ssh,
)

from conftest import SandboxFactory
from selfhost import ca_rotation, pki
from selfhost.deploy.record import state_dir
from selfhost.secrets import load_secrets

pytestmark = pytest.mark.slow

SELFHOST = str(Path(sys.executable).with_name("selfhost"))
CA_ON_HOST = "/etc/backend-chat/ca.crt"

#: on the guest: GET /healthz through nginx every 0.1 s, verifying the server against
#: the CA file as it is at each request, until the stop file exists
PROBE_LOOP = r"""
import json, os, socket, ssl, sys, time
domain, ca, stop = sys.argv[1], sys.argv[2], sys.argv[3]
counts, failures = {}, []
deadline = time.monotonic() + 1500
while not os.path.exists(stop) and time.monotonic() < deadline:
    data = b""
    try:
        context = ssl.create_default_context(cafile=ca)
        with socket.create_connection(("127.0.0.1", 443), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=domain) as conn:
            conn.sendall(("GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                          % domain).encode())
            while chunk := conn.recv(65536):
                data += chunk
        status = data.split(b" ", 2)[1].decode()
    except (OSError, IndexError, ssl.SSLError) as exc:
        status = type(exc).__name__ + ": " + str(exc)[:120]
    counts[status] = counts.get(status, 0) + 1
    if status != "200" and len(failures) < 10:
        failures.append([round(time.time(), 2), status])
    time.sleep(0.1)
print(json.dumps({"counts": counts, "failures": failures}))
"""


@dataclass
class Seen:
    """What the guest showed at one moment."""

    #: the certificates of the host's ca.crt (SHA-256 fingerprints, in order)
    bundle: list[str]
    #: does nginx's certificate verify against: the old CA alone, the new CA alone, ca.crt
    old: bool
    new: bool
    bundled: bool
    secret_names: list[str]


@dataclass
class Rotated:
    deployment: Deployment
    work: Path
    old_pem: str = ""
    new_pem: str = ""
    old_key: str = ""
    seen: dict[str, Seen] = field(default_factory=dict)
    runs: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    probe: dict[str, object] = field(default_factory=dict)


def _fingerprints(pem: str) -> list[str]:
    return [c.fingerprint(hashes.SHA256()).hex() for c in
            x509.load_pem_x509_certificates(pem.encode())] if pem.strip() else []


def _on_guest(d: Deployment, script: str, stdin: str | None = None
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(d.box.ssh_command(d.box.guests[0].name, "bash", "-c", script),
                          input=stdin, capture_output=True, text=True, timeout=120,
                          check=False)


def _verifies(d: Deployment, ca_file: str) -> bool:
    """Does ``openssl s_client -verify_return_error`` accept nginx against ``ca_file``?"""
    done = _on_guest(d, f"openssl s_client -connect 127.0.0.1:443 -servername "
                        f"{d.plan.tls.domain} -verify_return_error -CAfile {ca_file} "
                        "</dev/null 2>&1")
    return done.returncode == 0 and "Verify return code: 0 (ok)" in done.stdout


def _look(r: Rotated) -> Seen:
    d = r.deployment
    bundle = _on_guest(d, f"cat {CA_ON_HOST}").stdout
    for name, pem in (("old", r.old_pem), ("new", r.new_pem)):
        if pem:
            _on_guest(d, f"cat > /root/rotate-ca-{name}.pem", stdin=pem)
    stored = load_secrets(d.profile_path, passphrase=PASSPHRASE)
    return Seen(bundle=_fingerprints(bundle),
                old=_verifies(d, "/root/rotate-ca-old.pem"),
                new=bool(r.new_pem) and _verifies(d, "/root/rotate-ca-new.pem"),
                bundled=_verifies(d, CA_ON_HOST), secret_names=sorted(stored))


def _cli(r: Rotated, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SELFHOST_PASSPHRASE": PASSPHRASE}
    return subprocess.run([SELFHOST, "certs", "rotate-ca", str(r.deployment.profile_path),
                           "--sandbox", r.deployment.box.name, "--yes", "--json", *argv],
                          capture_output=True, text=True, timeout=1200, check=False, env=env)


@pytest.fixture(scope="module")
def rotated(sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
            ) -> Rotated:
    box = sandbox_factory("rotca-air", 1, "bookworm", image="server")
    work = tmp_path_factory.mktemp("rotate-ca")
    d = run_deploy(Deployment("air-gapped", "bookworm", make_profile(work, "air-gapped", box),
                              box), work, label="first")
    d.require()
    r = Rotated(d, work)
    r.old_pem = _on_guest(d, f"cat {CA_ON_HOST}").stdout
    r.old_key = load_secrets(d.profile_path, passphrase=PASSPHRASE)["ca_key"]
    r.seen["before"] = _look(r)
    stop = f"/run/rotate-ca-probe-stop-{os.getpid()}"
    ssh(box, box.guests[0].name, "rm", "-f", stop)
    loop = subprocess.Popen(box.ssh_command(box.guests[0].name, "python3", "-c", PROBE_LOOP,
                                            d.plan.tls.domain, CA_ON_HOST, stop),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    try:
        r.runs["add"] = _cli(r, "--stop-after", "add")
        stored = load_secrets(d.profile_path, passphrase=PASSPHRASE)
        if ca_rotation.NEXT in stored:
            new = pki.stored_ca(stored[ca_rotation.NEXT],
                                state_dir(d.profile_path, d.plan.customer.id))
            if new is not None:
                r.new_pem = new.public_bytes(serialization.Encoding.PEM).decode()
        r.seen["add"] = _look(r)
        r.runs["switch"] = _cli(r, "--stop-after", "switch")
        r.seen["switch"] = _look(r)
        r.runs["finish"] = _cli(r)
        r.seen["finish"] = _look(r)
    finally:
        ssh(box, box.guests[0].name, "touch", stop)
        out, err = loop.communicate(timeout=60)
    r.probe = json.loads(out) if out.strip() else {"error": err}
    return r


def _ran(r: Rotated, phase: str) -> dict[str, object]:
    done = r.runs[phase]
    assert done.returncode == 0, f"{phase}: exit {done.returncode}\n{done.stderr[-3000:]}"
    report: dict[str, object] = json.loads(done.stdout)
    return report


def test_before_the_rotation_a_client_of_the_old_ca_connects(rotated: Rotated) -> None:
    before = rotated.seen["before"]
    assert len(before.bundle) == 1
    assert (before.old, before.bundled) == (True, True)


def test_add_makes_the_hosts_trust_both_cas(rotated: Rotated) -> None:
    report = _ran(rotated, "add")
    assert report["phases"] == ["add"]
    old, new = _fingerprints(rotated.old_pem)[0], _fingerprints(rotated.new_pem)[0]
    added = rotated.seen["add"]
    assert added.bundle == [old, new]
    # the servers still present the old CA's certificates
    assert (added.old, added.new, added.bundled) == (True, False, True)
    assert ca_rotation.NEXT in added.secret_names
    assert not ca_rotation.pending_path(rotated.deployment.profile_path).exists()


def test_switch_serves_certificates_of_the_new_ca_while_both_are_trusted(
        rotated: Rotated) -> None:
    report = _ran(rotated, "switch")
    assert (report["phases"], report["resumed"]) == (["switch"], True)
    old, new = _fingerprints(rotated.old_pem)[0], _fingerprints(rotated.new_pem)[0]
    switched = rotated.seen["switch"]
    assert switched.bundle == [new, old]
    assert (switched.old, switched.new, switched.bundled) == (False, True, True)
    assert ca_rotation.PREVIOUS in switched.secret_names
    assert ca_rotation.NEXT not in switched.secret_names


def test_finish_leaves_only_the_new_ca(rotated: Rotated) -> None:
    report = _ran(rotated, "finish")
    assert report["phases"] == ["finish"]
    assert report["new_ca_sha256"] == _fingerprints(rotated.new_pem)[0]
    assert report["old_ca_sha256"] == _fingerprints(rotated.old_pem)[0]
    done = rotated.seen["finish"]
    assert done.bundle == _fingerprints(rotated.new_pem)
    assert (done.old, done.new, done.bundled) == (False, True, True)
    assert ca_rotation.PREVIOUS not in done.secret_names
    assert ca_rotation.NEXT not in done.secret_names


def test_the_app_served_throughout(rotated: Rotated) -> None:
    counts = rotated.probe.get("counts")
    assert isinstance(counts, dict), rotated.probe
    assert set(counts) == {"200"}, rotated.probe
    assert counts["200"] > 50, rotated.probe


def test_the_old_ca_key_is_in_no_file(rotated: Rotated) -> None:
    _ran(rotated, "finish")
    # the key's base64 body lines: any copy of the PEM holds them
    needles = [line for line in rotated.old_key.splitlines() if not line.startswith("-----")]
    stored = load_secrets(rotated.deployment.profile_path, passphrase=PASSPHRASE)
    assert stored["ca_key"] != rotated.old_key
    assert rotated.old_key not in [stored[n] for n in stored]
    controller = [p for p in rotated.deployment.profile_path.parent.rglob("*") if p.is_file()
                  and any(n.encode() in p.read_bytes() for n in needles)]
    assert controller == []
    pattern = " ".join(f"-e '{n}'" for n in needles)
    found = _on_guest(rotated.deployment, f"grep -rlF {pattern} /etc /var/lib /root /opt "
                      "/srv /usr/local 2>/dev/null; true")
    assert found.stdout.strip() == ""


def test_verify_passes_and_a_second_deploy_changes_nothing(rotated: Rotated) -> None:
    _ran(rotated, "finish")
    d = rotated.deployment
    env = {**os.environ, "SELFHOST_PASSPHRASE": PASSPHRASE}
    report = rotated.work / "verify.json"
    done = subprocess.run([SELFHOST, "verify", str(d.profile_path), "--sandbox", d.box.name,
                           "--json", str(report)], capture_output=True, text=True,
                          timeout=600, check=False, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    again = run_deploy(Deployment("air-gapped", "bookworm", d.profile_path, d.box),
                       rotated.work, label="again")
    assert_nothing_changed(again.require())
