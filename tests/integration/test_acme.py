"""ACME mode of the playbook against Debian's pebble test CA on a sandbox guest.

One guest runs pebble (``PEBBLE_VA_ALWAYS_VALID=1``: it issues without calling
back, since nothing resolves the test domain), serving its directory over HTTPS
with a certificate from a CA made here; the playbook trusts that CA through
``selfhost_acme_ca``. The other guest is an all-in-one deployment in ``acme``
mode. A second run must change nothing and must not order a new certificate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from deploy_support import https_request
from ruamel.yaml import YAML

from conftest import SandboxFactory
from selfhost import pki
from selfhost.models import Profile
from selfhost.paths import ANSIBLE_DIR, preset_path
from selfhost.plan import Plan, plan
from selfhost.profile_io import load_profile
from selfhost.sandbox import Sandbox
from selfhost.targets.inventory import read_hosts

pytestmark = pytest.mark.slow

PEBBLE_PORT = 14000
PEBBLE_MANAGEMENT_PORT = 15000
DOMAIN = "chat.acme-test.internal"


@dataclass
class AcmeSetup:
    box: Sandbox
    app_address: str
    pebble_address: str
    directory_ca: str
    workdir: Path
    plan: Plan
    env: dict[str, str]


def _ssh(box: Sandbox, guest: str, *argv: str, stdin: str | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(box.ssh_command(guest, *argv), input=stdin, capture_output=True,
                          text=True, timeout=timeout, check=False)


def _must(result: subprocess.CompletedProcess[str], what: str) -> str:
    if result.returncode != 0:
        pytest.fail(f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}",
                    pytrace=False)
    return result.stdout


def _pebble_tls(address: str) -> tuple[str, str, str]:
    """(CA certificate, server certificate, server key) for pebble's HTTPS listener."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acme test directory CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (ca.public_bytes(pem).decode(), cert.public_bytes(pem).decode(),
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def _start_pebble(box: Sandbox, guest: str, address: str) -> str:
    """Install and start pebble on ``guest``; returns the CA that signs its HTTPS."""
    _must(_ssh(box, guest, "apt-get", "update", "-q"), "apt-get update")
    _must(_ssh(box, guest, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install",
               "-y", "-q", "pebble"), "installing pebble")
    ca, cert, key = _pebble_tls(address)
    config = {"pebble": {
        "listenAddress": f"0.0.0.0:{PEBBLE_PORT}",
        "managementListenAddress": f"0.0.0.0:{PEBBLE_MANAGEMENT_PORT}",
        "certificate": "/etc/pebble/cert.pem", "privateKey": "/etc/pebble/key.pem",
        "httpPort": 5002, "tlsPort": 5001, "ocspResponderURL": "",
        "externalAccountBindingRequired": False}}
    _must(_ssh(box, guest, "mkdir", "-p", "-m", "0700", "/etc/pebble"), "creating /etc/pebble")
    for name, text in (("cert.pem", cert), ("key.pem", key),
                       ("config.json", json.dumps(config))):
        _must(_ssh(box, guest, "sh", "-c", f"cat > /etc/pebble/{name}", stdin=text),
              f"writing /etc/pebble/{name}")
    _must(_ssh(box, guest, "systemd-run", "--unit", "pebble",
               "--setenv=PEBBLE_VA_ALWAYS_VALID=1", "--setenv=PEBBLE_WFE_NONCEREJECT=0",
               "--setenv=PEBBLE_VA_NOSLEEP=1",
               "/usr/bin/pebble", "-config", "/etc/pebble/config.json"), "starting pebble")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection((address, PEBBLE_PORT), timeout=2).close()
            return ca
        except OSError:
            time.sleep(0.5)
    pytest.fail("pebble did not listen on port 14000 within 60 s", pytrace=False)


def _acme_plan(app_address: str, pebble_address: str) -> Plan:
    data = load_profile(preset_path("air-gapped")).model_dump(mode="json")
    data["hosts"]["app"][0]["address"] = app_address
    data["tls"] = {"mode": "acme", "domain": DOMAIN, "min_version": "1.3",
                   "acme": {"provider": "customer", "email": "tls@example.com",
                            "directory_url": f"https://{pebble_address}:{PEBBLE_PORT}/dir"}}
    return plan(Profile.model_validate(data))


@pytest.fixture(scope="module")
def acme(sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
         ) -> AcmeSetup:
    box = sandbox_factory("acme-test", 2, "bookworm")
    app, pebble = box.guests
    directory_ca = _start_pebble(box, pebble.name, pebble.address)
    the_plan = _acme_plan(app.address, pebble.address)
    workdir = tmp_path_factory.mktemp("acme")
    material = pki.issue(the_plan, None, workdir / "pki")
    extravars = {"selfhost_plan": the_plan.model_dump(mode="json"),
                 "selfhost_pki": material.as_extravars(), "selfhost_tool_version": "test",
                 "selfhost_acme_ca": directory_ca, "selfhost_app_release": ""}
    (workdir / "vars.json").write_text(json.dumps(extravars))
    _write_inventory(box, the_plan, workdir / "inventory.yml")
    env = {f"SELFHOST_SECRET_{s.name.upper()}": secrets.token_urlsafe(24)
           for s in the_plan.secrets_required}
    return AcmeSetup(box, app.address, pebble.address, directory_ca, workdir, the_plan, env)


def _write_inventory(box: Sandbox, the_plan: Plan, path: Path) -> None:
    connection = read_hosts(box.inventory)[box.guests[0].name]
    connection.pop("selfhost_sandbox_release", None)
    host = the_plan.hosts[0]
    inventory = {"all": {
        "hosts": {host.name: {**connection, "ansible_host": host.address}},
        "children": {group: {"hosts": {host.name: None}} for group in ("app", "database",
                                                                         "cache")}}}
    with path.open("w") as fh:
        YAML(typ="safe").dump(inventory, fh)


def _playbook(setup: AcmeSetup) -> str:
    env = {**os.environ, **setup.env, "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_STRATEGY": "linear"}
    command = [str(Path(sys.executable).parent / "ansible-playbook"),
               "-i", str(setup.workdir / "inventory.yml"), str(ANSIBLE_DIR / "site.yml"),
               "-e", f"@{setup.workdir / 'vars.json'}"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800,
                            check=False)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return result.stdout


def _changed(output: str) -> int:
    match = re.search(r"^chat1\s*:.*\bchanged=(\d+)", output, re.MULTILINE)
    assert match, output[-2000:]
    return int(match.group(1))


def _pebble_root(setup: AcmeSetup) -> str:
    context = ssl.create_default_context(cadata=setup.directory_ca)
    with socket.create_connection((setup.pebble_address, PEBBLE_MANAGEMENT_PORT),
                                  timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=setup.pebble_address) as conn:
        conn.sendall(b"GET /roots/0 HTTP/1.1\r\nHost: pebble\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return data.partition(b"\r\n\r\n")[2].decode()


def _served(setup: AcmeSetup, root: str) -> tuple[str, int, str]:
    """(serial of the served certificate, status of the index page, TLS version), verified
    against pebble's root and the domain."""
    reply = https_request(setup.app_address, DOMAIN, ssl.create_default_context(cadata=root),
                          "/")
    return (str(x509.load_der_x509_certificate(reply.certificate).serial_number),
            reply.status, reply.version)


@pytest.fixture(scope="module")
def first_run(acme: AcmeSetup) -> str:
    return _playbook(acme)


@pytest.fixture(scope="module")
def served_after_first(acme: AcmeSetup, first_run: str) -> tuple[str, int, str]:
    return _served(acme, _pebble_root(acme))


@pytest.fixture(scope="module")
def second_run(acme: AcmeSetup, served_after_first: tuple[str, int, str]) -> str:
    return _playbook(acme)


def test_certificate_from_the_acme_directory_is_served(
        served_after_first: tuple[str, int, str]) -> None:
    assert served_after_first[1] == 200


def test_acme_certificate_is_served_over_tls13(
        served_after_first: tuple[str, int, str]) -> None:
    assert served_after_first[2] == "TLSv1.3"


def test_certbot_used_the_plan_directory(acme: AcmeSetup, first_run: str) -> None:
    renewal = _must(_ssh(acme.box, acme.box.guests[0].name, "cat",
                         f"/etc/letsencrypt/renewal/{DOMAIN}.conf"), "reading the renewal file")
    assert f"server = https://{acme.pebble_address}:{PEBBLE_PORT}/dir" in renewal


def test_renewal_timer_is_enabled(acme: AcmeSetup, first_run: str) -> None:
    result = _ssh(acme.box, acme.box.guests[0].name, "systemctl", "is-enabled", "certbot.timer")
    assert result.stdout.strip() == "enabled"


def test_renewals_trust_the_directory_ca(acme: AcmeSetup, first_run: str) -> None:
    result = _ssh(acme.box, acme.box.guests[0].name, "systemctl", "show", "certbot.service",
                  "--property", "Environment")
    assert "REQUESTS_CA_BUNDLE=/etc/backend-chat/tls/acme-directory-ca.pem" in result.stdout


def test_second_run_changes_nothing(second_run: str) -> None:
    assert _changed(second_run) == 0


def test_second_run_orders_no_new_certificate(
        acme: AcmeSetup, served_after_first: tuple[str, int, str], second_run: str) -> None:
    assert _served(acme, _pebble_root(acme))[0] == served_after_first[0]


def test_a_dry_run_renewal_succeeds_as_the_timer_runs_it(
        acme: AcmeSetup, served_after_first: tuple[str, int, str], second_run: str) -> None:
    """The renewal certbot.timer triggers, in certbot.service's own environment (the
    directory's CA bundle), as a dry run against the test directory: it must order a
    test certificate, put nginx back, and leave the served certificate alone."""
    guest = acme.box.guests[0].name
    environment = _must(_ssh(acme.box, guest, "systemctl", "show", "certbot.service",
                             "--property", "Environment", "--value"), "reading the unit")
    assert "REQUESTS_CA_BUNDLE=" in environment
    # --dry-run alone swaps the renewal's server for Let's Encrypt's staging directory;
    # the Plan's directory is named again so that nothing is sent anywhere else.
    result = _ssh(acme.box, guest, "env", *environment.split(), "certbot", "renew",
                  "--dry-run", "--no-random-sleep-on-renew", "--cert-name", DOMAIN,
                  "--server", acme.plan.tls.acme_directory or "")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Congratulations, all simulated renewals succeeded" in output, output
    active = _ssh(acme.box, guest, "systemctl", "is-active", "nginx.service")
    assert active.stdout.strip() == "active"
    assert _served(acme, _pebble_root(acme))[0] == served_after_first[0]
