"""Certificates on a real guest: ``selfhost certs``, renewal by deploy, provided expiry.

One all-in-one guest is deployed once (self-signed mode) and shared by the
tests in order. ``selfhost certs`` is run as a user runs it (the installed
command, its own process) and compared with what ``openssl`` on the guest
reads from the same files. A short-lived internal certificate planted on the
controller and the guest makes verify fail; a redeploy must replace it with
one that lives longer, verify green again, and a further redeploy change
nothing. The deployment then moves to ``provided`` mode with a chain from a
CA made here: a chain with 20 days left makes verify and certs warn (exit 0),
one with 3 days left (put on the guest) makes both exit 1, naming the file.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from deploy_support import assert_nothing_changed
from ruamel.yaml import YAML

from conftest import SandboxFactory
from selfhost import pki, sandbox
from selfhost.deploy import DeployOptions
from selfhost.deploy import deploy as run_deploy
from selfhost.deploy.redact import Redactor
from selfhost.deploy.service import DeployResult
from selfhost.init import InitRequest, run_init
from selfhost.paths import state_dir
from selfhost.plan import Plan
from selfhost.secrets import load_secrets

pytestmark = pytest.mark.slow

SELFHOST = str(Path(sys.executable).with_name("selfhost"))
PASSPHRASE = "certs-integration-passphrase"
SUPPLIED = {
    "SELFHOST_OPENAI_API_KEY": "sk-test-openai-key-000000000000",
    "SELFHOST_EMAIL_PASSWORD": "SG.test-email-password-000000",
    "SELFHOST_SENTRY_DSN": "https://key000@o1.ingest.us.sentry.io/1",
}
STAGED = "/etc/backend-chat/tls/server.crt"
SERVED = "/etc/nginx/tls/server.crt"
SERVED_KEY = "/etc/nginx/tls/server.key"
CA_ON_HOST = "/etc/backend-chat/ca.crt"
TEST_CA_ON_HOST = "/usr/local/share/ca-certificates/certs-test-ca.crt"


@dataclass
class Deployed:
    profile: Path
    box: sandbox.Sandbox
    plan: Plan

    def on_host(self, script: str) -> str:
        done = subprocess.run(self.box.ssh_command(self.box.guests[0], "bash", "-c", script),
                              capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            pytest.fail(f"{script!r} failed on the guest: {done.stderr.strip()}",
                        pytrace=False)
        return done.stdout

    def deploy(self) -> DeployResult:
        result = run_deploy(self.profile, DeployOptions(sandbox=self.box.name, yes=True,
                                                        passphrase=PASSPHRASE))
        self.plan = result.plan
        return result

    def cli(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SELFHOST, *argv, str(self.profile), "--sandbox",
                               self.box.name], capture_output=True, text=True, timeout=180,
                              check=False)

    def certs(self) -> tuple[int, dict[str, Any]]:
        done = self.cli("certs", "--json")
        try:
            return done.returncode, json.loads(done.stdout)
        except ValueError:
            pytest.fail(f"certs printed no JSON ({done.returncode}): {done.stderr}",
                        pytrace=False)

    def verify(self, tmp: Path) -> tuple[int, dict[str, Any]]:
        report = tmp / "verify.json"
        report.unlink(missing_ok=True)
        done = subprocess.run([SELFHOST, "verify", str(self.profile), "--sandbox",
                               self.box.name, "--json", str(report)], capture_output=True,
                              text=True, timeout=300, check=False)
        assert report.exists(), done.stderr
        return done.returncode, json.loads(report.read_text())

    def openssl(self, path: str) -> dict[str, str]:
        """What openssl on the guest reads from the file's first certificate."""
        out = self.on_host(f"openssl x509 -in {path} -noout -enddate -fingerprint -sha256 "
                           "-subject -nameopt RFC2253")
        fields = dict(line.split("=", 1) for line in out.splitlines())
        return {"not_after": fields["notAfter"],
                "sha256": fields["sha256 Fingerprint"].replace(":", "").lower(),
                "subject": fields["subject"]}


@pytest.fixture(scope="module")
def deployed(sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
             ) -> Deployed:
    box = sandbox_factory("certs", hosts=1, image="server")
    path = tmp_path_factory.mktemp("certs") / "us-openai.yaml"
    run_init(InitRequest(output=path, preset="us-openai", sets=(), force=True,
                         passphrase=PASSPHRASE, environ=SUPPLIED), None, None)
    d = Deployed(path, box, None)  # type: ignore[arg-type]
    d.deploy()
    return d


def _by_path(report: dict[str, Any], host: str) -> dict[str, dict[str, Any]]:
    return {c["path"]: c for c in report["hosts"][host]["certificates"] if c["index"] == 0}


def _openssl_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%b %d %H:%M:%S %Y GMT").replace(tzinfo=dt.UTC)


def test_certs_lists_what_the_host_holds(deployed: Deployed) -> None:
    rc, report = deployed.certs()
    assert rc == 0, report["attention"]
    host = deployed.plan.hosts[0].name
    listed = _by_path(report, host)
    assert sorted(listed) == sorted([CA_ON_HOST, STAGED, SERVED])
    for path, cert in listed.items():
        seen = deployed.openssl(path)
        assert cert["sha256"] == seen["sha256"], path
        assert dt.datetime.fromisoformat(cert["not_after"]) == _openssl_time(
            seen["not_after"]), path
        assert cert["subject"] == seen["subject"], path
    assert listed[CA_ON_HOST]["kind"] == "internal-ca"
    assert listed[SERVED]["issuer"] == listed[CA_ON_HOST]["subject"]
    assert listed[SERVED]["level"] == "ok"


def _short_lived(deployed: Deployed, days: int) -> str:
    """A certificate of the internal CA for the host, with its names and key, that ends
    in ``days``: what an old deployment left behind."""
    host = deployed.plan.hosts[0].name
    ca_key = serialization.load_pem_private_key(
        load_secrets(deployed.profile, PASSPHRASE)["ca_key"].encode(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate(deployed.on_host(f"cat {CA_ON_HOST}").encode())
    key = pki.derive_host_key(ca_key, host)
    sans = pki.host_names(deployed.plan)[host]
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sans[0])]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in sans]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _general_name(value: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        return x509.DNSName(value)


def test_deploy_renews_an_internal_certificate_close_to_its_end(
        deployed: Deployed, tmp_path: Path) -> None:
    host = deployed.plan.hosts[0].name
    pem = _short_lived(deployed, 10)
    stored = state_dir(deployed.profile, deployed.plan.customer.id) / "hosts" / f"{host}.crt"
    stored.write_text(pem)
    deployed.on_host(f"cat > {STAGED} <<'EOF'\n{pem}EOF\ncp {STAGED} {SERVED} && "
                     "systemctl restart nginx")
    planted = deployed.openssl(SERVED)
    rc, report = deployed.verify(tmp_path)
    assert rc == 1
    failed = [c["id"] for c in report["checks"] if c["result"] == "fail"]
    assert failed == ["nginx.certificate"]
    rc, certs = deployed.certs()
    assert (rc, _by_path(certs, host)[SERVED]["level"]) == (0, "warning")

    deployed.deploy()
    renewed = deployed.openssl(SERVED)
    assert renewed["sha256"] != planted["sha256"]
    assert _openssl_time(renewed["not_after"]) - _openssl_time(planted["not_after"]) > \
        dt.timedelta(days=70)
    assert deployed.openssl(STAGED)["sha256"] == renewed["sha256"]
    rc, report = deployed.verify(tmp_path)
    assert (rc, [c["id"] for c in report["checks"] if c["result"] != "pass"]) == (0, [])
    assert_nothing_changed(deployed.deploy())


def _provided_chain(domain: str, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate,
                    key: ec.EllipticCurvePrivateKey, days: int) -> str:
    now = dt.datetime.now(dt.UTC)
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in (leaf, ca))


def _customer_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    return ca_key, ca


@pytest.fixture(scope="module")
def provided(deployed: Deployed) -> tuple[Deployed, str]:
    """The deployment moved to provided mode with a chain that has 20 days left; the
    customer's CA is in the guest's trust store (as a private PKI's root would be).
    Returns the deployment and a chain of the same key with 3 days left."""
    domain = deployed.plan.tls.domain
    for n in range(3):
        ca_key, ca = _customer_ca(f"certs test customer CA {'x' * n}")
        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        chain = _provided_chain(domain, ca_key, ca, key, 20)
        # The last line of an EC key's PEM is mostly its public point, which the
        # certificate carries too: when the two line up in base64 (a matter of the
        # names' lengths), deploy's leak scan rightly cannot tell them apart. Another
        # CA name length shifts the alignment.
        if not Redactor({"key": key_pem}).find(chain):
            break
    folder = deployed.profile.parent
    (folder / "chain.pem").write_text(chain)
    (folder / "key.pem").write_text(key_pem)
    (folder / "key.pem").chmod(0o600)
    yaml = YAML()
    doc = yaml.load(deployed.profile.read_text())
    doc["tls"]["mode"] = "provided"
    doc["tls"]["cert_file"] = "chain.pem"
    doc["tls"]["key_file"] = "key.pem"
    with deployed.profile.open("w") as fh:
        yaml.dump(doc, fh)
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
    deployed.on_host(f"cat > {TEST_CA_ON_HOST} <<'EOF'\n{ca_pem}EOF\n"
                     "update-ca-certificates >/dev/null")
    deployed.deploy()
    return deployed, _provided_chain(domain, ca_key, ca, key, 3)


def test_a_provided_certificate_within_30_days_warns(provided: tuple[Deployed, str],
                                                     tmp_path: Path) -> None:
    d, _ = provided
    rc, report = d.verify(tmp_path)
    assert rc == 0, [c for c in report["checks"] if c["result"] == "fail"]
    rows = [c for c in report["checks"] if c["result"] != "pass"]
    assert [(c["id"], c["result"]) for c in rows] == [("nginx.certificate", "warn")]
    assert f"replace {SERVED}" in rows[0]["found"]
    assert "tls.cert_file" in rows[0]["fix"]
    rc, certs = d.certs()
    listed = _by_path(certs, d.plan.hosts[0].name)
    assert (rc, listed[SERVED]["kind"], listed[SERVED]["level"]) == (0, "provided", "warning")
    assert CA_ON_HOST not in listed


def test_a_provided_certificate_in_its_last_week_fails(provided: tuple[Deployed, str],
                                                       tmp_path: Path) -> None:
    d, last_week = provided
    d.on_host(f"cp -p {SERVED} /root/served.saved && cat > {SERVED} <<'EOF'\n{last_week}EOF\n"
              "systemctl restart nginx")
    try:
        rc, report = d.verify(tmp_path)
        failed = [c for c in report["checks"] if c["result"] == "fail"]
        assert (rc, [c["id"] for c in failed]) == (1, ["nginx.certificate"])
        assert f"(3 days); replace {SERVED}" in failed[0]["found"] or \
            f"(2 days); replace {SERVED}" in failed[0]["found"], failed[0]["found"]
        rc, certs = d.certs()
        assert rc == 1
        assert any(SERVED in line and "expires in" in line and "tls.cert_file" in line
                   for line in certs["attention"]), certs["attention"]
    finally:
        d.on_host(f"mv /root/served.saved {SERVED} && systemctl restart nginx")
    rc, report = d.verify(tmp_path)
    assert rc == 0
