"""Deploy paths the presets do not take, on one Debian 12 guest: the customer's own
certificate (``tls.mode: provided``) and a non-root ssh user that becomes root
with sudo, reached through ``--inventory FILE`` as a customer would.

The certificate chain is the customer's: a root CA made here (trusted on the host,
as a corporate CA would be), an intermediate and the server certificate. The
deploy, the no-op redeploy and ``selfhost verify`` all go through the sudo user.
Last, the profile turns backups off: the deploy names the backup component it
leaves in place.
"""

from __future__ import annotations

import datetime as dt
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from deploy_support import (
    PASSPHRASE,
    SUPPLIED,
    assert_nothing_changed,
    env_without_secrets,
    https_request,
    secret_values,
    ssh,
    sslyze_modern,
)
from ruamel.yaml import YAML

from conftest import SandboxFactory
from selfhost.cli.app import main
from selfhost.deploy import DeployOptions, DeployResult, deploy
from selfhost.deploy.redact import Redactor, scan
from selfhost.init import InitRequest, run_init
from selfhost.sandbox import Sandbox
from selfhost.targets.inventory import read_hosts
from selfhost.verify import VerifyResult, verify
from selfhost.workflows.demo import address_sets

pytestmark = pytest.mark.slow

DOMAIN = "chat.example.internal"  # the air-gapped preset's domain
USER = "deployer"
CA_ON_HOST = "/usr/local/share/ca-certificates/customer-root.crt"

Key = ec.EllipticCurvePrivateKey


@dataclass
class Chain:
    root_pem: str
    chain_pem: str  # server certificate, then the intermediate
    key_pem: str
    server_der: bytes


def _cert(subject: str, issuer: x509.Name | None, key: Key, signer: Key, *, ca: bool
          ) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=90))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    # Key identifiers, as every real CA sets them (strict path validation needs them).
    builder = builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False)
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = (builder
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]),
                                  critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                  critical=False))
    return builder.sign(signer, hashes.SHA256())


def customer_chain() -> Chain:
    root_key, mid_key, key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _cert("Customer Root CA (test)", None, root_key, root_key, ca=True)
    mid = _cert("Customer Issuing CA (test)", root.subject, mid_key, root_key, ca=True)
    server = _cert(DOMAIN, mid.subject, key, mid_key, ca=False)
    pem = serialization.Encoding.PEM
    return Chain(
        root_pem=root.public_bytes(pem).decode(),
        chain_pem=server.public_bytes(pem).decode() + mid.public_bytes(pem).decode(),
        key_pem=key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode(),
        server_der=server.public_bytes(serialization.Encoding.DER))


def _must(box: Sandbox, guest: str, *argv: str) -> str:
    done = ssh(box, guest, *argv, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(argv)} on {guest} failed ({done.returncode}):\n"
                    f"{done.stdout}\n{done.stderr}", pytrace=False)
    return done.stdout


def prepare_host(box: Sandbox, chain: Chain) -> None:
    """A host as a customer hands it over: an admin user with sudo and the ssh key,
    and the corporate root CA in the system trust store."""
    guest = box.guests[0].name
    _must(box, guest, "sh", "-ec", "apt-get update -q && DEBIAN_FRONTEND=noninteractive "
          "apt-get install -y -q --no-install-recommends sudo")
    _must(box, guest, "sh", "-ec", f"""
        id {USER} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {USER}
        install -d -m 0700 -o {USER} -g {USER} /home/{USER}/.ssh
        install -m 0600 -o {USER} -g {USER} /root/.ssh/authorized_keys /home/{USER}/.ssh/
        echo '{USER} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/{USER}
        chmod 0440 /etc/sudoers.d/{USER}
        visudo -cq
        printf '%s' '{chain.root_pem}' > {CA_ON_HOST}
        update-ca-certificates >/dev/null
    """)


def customer_inventory(box: Sandbox, path: Path) -> Path:
    """An Ansible YAML inventory naming the Plan's host, reached as the sudo user."""
    guest = box.guests[0]
    sandbox_vars = read_hosts(box.inventory)[guest.name]
    hostvars = {"ansible_host": guest.address, "ansible_user": USER,
                "ansible_ssh_private_key_file": sandbox_vars["ansible_ssh_private_key_file"],
                "ansible_ssh_common_args": sandbox_vars["ansible_ssh_common_args"]}
    with path.open("w") as out:
        YAML(typ="safe").dump({"all": {"hosts": {"chat1": hostvars}}}, out)
    return path


@dataclass
class Variant:
    box: Sandbox
    chain: Chain
    profile: Path
    inventory: Path
    first: DeployResult
    second: DeployResult
    artifacts: list[Path]

    def verify(self) -> VerifyResult:
        return verify(self.profile, inventory=self.inventory)


@pytest.fixture(scope="module")
def variant(sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
            ) -> Variant:
    work = tmp_path_factory.mktemp("variant")
    box = sandbox_factory("dbo-variants", 1, "bookworm", image="server")
    chain = customer_chain()
    prepare_host(box, chain)
    cert_file, key_file = work / "customer-chain.pem", work / "customer-key.pem"
    cert_file.write_text(chain.chain_pem)
    key_file.touch(mode=0o600)
    key_file.write_text(chain.key_pem)
    profile = work / "provided.yaml"
    sets = (*address_sets("air-gapped", [box.guests[0].address]),
            "tls.mode=provided", f"tls.cert_file={cert_file}", f"tls.key_file={key_file}",
            f"hosts.ssh_user={USER}", "hosts.become=true")
    environ = {f"SELFHOST_{k.upper()}": v for k, v in SUPPLIED.items()}
    run_init(InitRequest(output=profile, preset="air-gapped", sets=sets, force=True,
                         passphrase=PASSPHRASE, environ=environ), None, None)
    inventory = customer_inventory(box, work / "inventory.yml")
    results, artifacts = [], []
    for label in ("first", "second"):
        artifacts.append(work / f"artifacts-{label}")
        results.append(deploy(profile, DeployOptions(
            inventory=inventory, yes=True, passphrase=PASSPHRASE,
            keep_artifacts=artifacts[-1])))
    return Variant(box, chain, profile, inventory, results[0], results[1], artifacts)


def test_sudo_user_deploys(variant: Variant) -> None:
    assert {h: s.failed for h, s in variant.first.stats.items()} == {"chat1": 0}


def test_sudo_user_redeploy_changes_nothing(variant: Variant) -> None:
    assert_nothing_changed(variant.second)


def test_nginx_serves_the_customers_certificate(variant: Variant) -> None:
    # Only the customer's root is trusted here: a self-signed fallback would fail.
    reply = https_request(variant.box.guests[0].address, DOMAIN,
                          ssl.create_default_context(cadata=variant.chain.root_pem), "/")
    assert reply.certificate == variant.chain.server_der


def test_sslyze_finds_the_customers_certificate_compliant_with_mozilla_modern(
        variant: Variant, tmp_path: Path) -> None:
    rc, verdict = sslyze_modern(variant.box.guests[0].address, DOMAIN, variant.chain.root_pem,
                                tmp_path)
    assert (rc, "OK - Compliant." in verdict) == (0, True), verdict


def test_the_key_on_the_host_is_root_only(variant: Variant) -> None:
    out = _must(variant.box, variant.box.guests[0].name, "stat", "-c", "%a %U",
                "/etc/backend-chat/tls/server.key", "/etc/nginx/tls/server.key")
    assert out.splitlines() == ["600 root", "600 root"]


def test_the_private_key_is_in_no_artifact(variant: Variant) -> None:
    redactor = Redactor({"customer_tls_key": variant.chain.key_pem,
                         **secret_values(variant.profile)})
    assert [hit for path in variant.artifacts for hit in scan([path], redactor)] == []


def test_ansible_ran_as_the_sudo_user(variant: Variant) -> None:
    # sudo logs every command it runs for the user; the deploy's went through it.
    out = _must(variant.box, variant.box.guests[0].name, "journalctl", "_COMM=sudo",
                "--no-pager", "-q", "-o", "cat")
    assert re.search(rf"^\s*{USER} : .*USER=root ;", out, re.MULTILINE) is not None


def test_verify_through_the_sudo_user_passes(variant: Variant) -> None:
    result = variant.verify()
    assert [f"{r.check.id}: {r.found}" for r in result.failures] == []



# -- last: the profile drops a component (these tests change the deployment) ---------

@pytest.fixture(scope="module")
def dropped_backups(variant: Variant) -> str:
    """The output of a deploy after the profile turned backups off."""
    yaml = YAML()
    data = yaml.load(variant.profile.read_text())
    data["backups"] = {"enabled": False}
    with variant.profile.open("w") as out:
        yaml.dump(data, out)
    result = CliRunner().invoke(main, ["deploy", str(variant.profile), "--inventory",
                                       str(variant.inventory), "--yes"],
                                env=env_without_secrets())
    assert result.exit_code == 0, result.output
    return result.output


def test_a_dropped_component_is_named(dropped_backups: str) -> None:
    assert "note: chat1: backup is no longer part of the deployment" in dropped_backups


def test_a_dropped_component_is_left_in_place(variant: Variant, dropped_backups: str) -> None:
    out = _must(variant.box, variant.box.guests[0].name, "systemctl", "is-enabled",
                "backend-chat-backup.timer")
    assert out.strip() == "enabled"
