"""ACME through `selfhost deploy` against Debian's pebble test CA, on Debian 12 and 13.

One guest (Debian 12) runs pebble (``PEBBLE_VA_ALWAYS_VALID=1``: it issues without
calling back, since nothing resolves the test domain), serving its directory over
HTTPS with a certificate from a CA made here. Per release, one all-in-one guest
gets a profile in ``acme`` mode whose ``tls.acme.ca_file`` is that CA, and trusts
the root pebble issues from in its system store (as a customer's hosts trust their
own CA); it is deployed with the `selfhost deploy` command (the launcher, Mitogen), deployed again
(changing nothing on any host, ordering no new certificate) and checked with
`selfhost verify`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
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
from deploy_support import (
    PASSPHRASE,
    RELEASES,
    Deployment,
    assert_nothing_changed,
    env_without_secrets,
    https_request,
    run_deploy,
)

from conftest import SandboxFactory
from selfhost.init import InitRequest, run_init
from selfhost.sandbox import Sandbox
from selfhost.workflows.demo import address_sets

pytestmark = pytest.mark.slow

PEBBLE_PORT = 14000
PEBBLE_MANAGEMENT_PORT = 15000
DOMAIN = "chat.acme-test.internal"
#: where the app host trusts the root pebble issues from (as a customer's CA root)
ISSUER_ON_HOST = "/usr/local/share/ca-certificates/acme-test-issuer.crt"
#: where the tls role puts the directory's CA (from tls.acme.ca_file) for certbot
ACME_CA_ON_HOST = "/etc/backend-chat/tls/acme-directory-ca.pem"


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


@dataclass
class AcmeSetup:
    release: str
    pebble_address: str
    directory_ca: str
    app: Deployment
    first: subprocess.CompletedProcess[str]
    #: (serial of the served certificate, status of the index page, TLS version)
    served_first: tuple[str, int, str]
    second: Deployment
    served_second: tuple[str, int, str]
    verified: subprocess.CompletedProcess[str]

    @property
    def app_address(self) -> str:
        return self.app.box.guests[0].address


def _selfhost(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "selfhost"), *argv],
                          capture_output=True, text=True, timeout=1800, check=False,
                          env=env_without_secrets())


@pytest.fixture(scope="module")
def pebble(sandbox_factory: SandboxFactory) -> tuple[str, str]:
    """(address, CA of its HTTPS) of the ACME directory, shared by both releases."""
    box = sandbox_factory("acme-ca", 1, "bookworm")
    guest = box.guests[0]
    return guest.address, _start_pebble(box, guest.name, guest.address)


@pytest.fixture(scope="module", params=RELEASES)
def acme(request: pytest.FixtureRequest, pebble: tuple[str, str],
         sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
         ) -> AcmeSetup:
    release: str = request.param
    pebble_address, directory_ca = pebble
    box = sandbox_factory(f"acme-{release[:2]}", 1, release, image="server")
    work = tmp_path_factory.mktemp(f"acme-{release}")
    ca_file = work / "acme-directory-ca.pem"
    ca_file.write_text(directory_ca)
    profile = work / "acme.yaml"
    sets = (*address_sets("air-gapped", [box.guests[0].address]), "tls.mode=acme",
            f"tls.domain={DOMAIN}", "tls.acme.provider=customer",
            "tls.acme.email=tls@example.com",
            f"tls.acme.directory_url=https://{pebble_address}:{PEBBLE_PORT}/dir",
            f"tls.acme.ca_file={ca_file}")
    run_init(InitRequest(output=profile, preset="air-gapped", sets=sets, force=True,
                         passphrase=PASSPHRASE, environ={}), None, None)
    # A customer running its own ACME CA trusts its root on its hosts, as any corporate
    # root: that is what `verify` checks the served chain against.
    _must(_ssh(box, box.guests[0].name, "sh", "-ec", f"cat > {ISSUER_ON_HOST} && "
               "update-ca-certificates >/dev/null",
               stdin=_pebble_root(pebble_address, directory_ca)),
          "trusting the ACME CA's root")
    first = _selfhost("deploy", str(profile), "--sandbox", box.name, "--yes")
    app = Deployment("air-gapped", release, profile, box)
    served_first = _served(app.box.guests[0].address, _pebble_root(pebble_address,
                                                                   directory_ca))
    second = run_deploy(Deployment("air-gapped", release, profile, box), work, label="second")
    served_second = _served(app.box.guests[0].address, _pebble_root(pebble_address,
                                                                    directory_ca))
    verified = _selfhost("verify", str(profile), "--sandbox", box.name)
    return AcmeSetup(release, pebble_address, directory_ca, app, first, served_first, second,
                     served_second, verified)


def _pebble_root(address: str, directory_ca: str) -> str:
    """The root that signs what pebble issues (made at its start)."""
    context = ssl.create_default_context(cadata=directory_ca)
    with socket.create_connection((address, PEBBLE_MANAGEMENT_PORT), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=address) as conn:
        conn.sendall(b"GET /roots/0 HTTP/1.1\r\nHost: pebble\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return data.partition(b"\r\n\r\n")[2].decode()


def _served(address: str, root: str) -> tuple[str, int, str]:
    """(serial of the served certificate, status of the index page, TLS version), verified
    against pebble's root and the domain."""
    reply = https_request(address, DOMAIN, ssl.create_default_context(cadata=root), "/")
    return (str(x509.load_der_x509_certificate(reply.certificate).serial_number),
            reply.status, reply.version)


def test_the_deploy_command_succeeds(acme: AcmeSetup) -> None:
    assert acme.first.returncode == 0, acme.first.stdout[-4000:] + acme.first.stderr[-2000:]


def test_certificate_from_the_acme_directory_is_served(acme: AcmeSetup) -> None:
    assert acme.served_first[1] == 200


def test_acme_certificate_is_served_over_tls13(acme: AcmeSetup) -> None:
    assert acme.served_first[2] == "TLSv1.3"


def _on_app(acme: AcmeSetup, *argv: str) -> subprocess.CompletedProcess[str]:
    return _ssh(acme.app.box, acme.app.box.guests[0].name, *argv)


def test_certbot_used_the_plan_directory(acme: AcmeSetup) -> None:
    renewal = _must(_on_app(acme, "cat", f"/etc/letsencrypt/renewal/{DOMAIN}.conf"),
                    "reading the renewal file")
    assert f"server = https://{acme.pebble_address}:{PEBBLE_PORT}/dir" in renewal


def test_renewal_timer_is_enabled(acme: AcmeSetup) -> None:
    assert _on_app(acme, "systemctl", "is-enabled", "certbot.timer").stdout.strip() == \
        "enabled"


def test_renewals_trust_the_directory_ca_from_the_profile(acme: AcmeSetup) -> None:
    environment = _on_app(acme, "systemctl", "show", "certbot.service", "--property",
                          "Environment").stdout
    bundle = _on_app(acme, "cat", ACME_CA_ON_HOST).stdout
    assert (f"REQUESTS_CA_BUNDLE={ACME_CA_ON_HOST}" in environment,
            bundle.strip() == acme.directory_ca.strip()) == (True, True)


def test_second_run_changes_nothing(acme: AcmeSetup) -> None:
    assert_nothing_changed(acme.second.require())


def test_second_run_orders_no_new_certificate(acme: AcmeSetup) -> None:
    assert acme.served_second[0] == acme.served_first[0]


def test_verify_passes_on_the_acme_host(acme: AcmeSetup) -> None:
    assert acme.verified.returncode == 0, acme.verified.stdout[-4000:] + acme.verified.stderr


def test_a_dry_run_renewal_succeeds_as_the_timer_runs_it(acme: AcmeSetup) -> None:
    """The renewal certbot.timer triggers, in certbot.service's own environment (the
    directory's CA bundle), as a dry run against the test directory: it must order a
    test certificate, put nginx back, and leave the served certificate alone."""
    environment = _must(_on_app(acme, "systemctl", "show", "certbot.service",
                                "--property", "Environment", "--value"), "reading the unit")
    assert "REQUESTS_CA_BUNDLE=" in environment
    # --dry-run alone swaps the renewal's server for Let's Encrypt's staging directory;
    # the Plan's directory is named again so that nothing is sent anywhere else.
    result = _on_app(acme, "env", *environment.split(), "certbot", "renew", "--dry-run",
                     "--no-random-sleep-on-renew", "--cert-name", DOMAIN,
                     "--server", f"https://{acme.pebble_address}:{PEBBLE_PORT}/dir")
    output = result.stdout + result.stderr
    served = _served(acme.app.box.guests[0].address,
                     _pebble_root(acme.pebble_address, acme.directory_ca))
    assert (result.returncode, "Congratulations, all simulated renewals succeeded" in output,
            _on_app(acme, "systemctl", "is-active", "nginx.service").stdout.strip(),
            served[0]) == (0, True, "active", acme.served_first[0]), output
