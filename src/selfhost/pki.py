"""The deployment's internal certificate authority, on the controller.

One ECDSA P-256 key (the secret ``ca_key``) is the whole PKI: the CA
certificate is signed by it, and every host key is derived from it with HKDF,
so host keys need no storage of their own and are the same on every run.
Issued certificates are kept in a state directory beside the profile and
reused while they are valid and still match the key, the CA and the wanted
names; a redeploy therefore hands the hosts the very same bytes and changes
nothing.

Which host gets a certificate follows the Plan: app hosts in ``self-signed``
mode (names: the TLS domain, the host name and address) and, when TLS between
hosts is on, the database and cache servers (the host name and address).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from selfhost.atomic import write_atomic
from selfhost.errors import InvalidInput, SecretsError
from selfhost.plan import Plan

CA_VALIDITY = dt.timedelta(days=3650)
#: server certificates' lifetime: Mozilla's "modern" profile allows at most 90 days
HOST_VALIDITY = dt.timedelta(days=90)
#: reissue a stored certificate when less than this is left
RENEW_BEFORE = dt.timedelta(days=30)
#: a stored certificate living longer than this was issued under another rule
#: (``not_valid_before`` is backdated five minutes against clock skew)
_HOST_LIFESPAN_MAX = HOST_VALIDITY + dt.timedelta(minutes=5)
_CURVE = ec.SECP256R1()
_HKDF_SALT = b"selfhost-pki-host-key-v1"


@dataclass(frozen=True)
class PkiMaterial:
    """Certificates (public) and host keys (secret) for one deployment."""

    ca_cert: str
    #: every Plan host; an empty string for a host that needs no certificate
    host_certs: dict[str, str]
    host_keys: dict[str, str] = field(repr=False)

    def as_extravars(self) -> dict[str, object]:
        """The public part, in the shape the playbook's ``selfhost_pki`` expects."""
        return {
            "ca_cert": self.ca_cert,
            "hosts": {name: ({"cert": cert} if cert else {})
                      for name, cert in sorted(self.host_certs.items())},
        }

    def secret_env(self) -> dict[str, str]:
        """Each host key under the ``SELFHOST_SECRET_TLS_KEY_<HOST>`` name the roles read
        (with the ``selfhost_secret`` lookup)."""
        return {key_env_name(name): key for name, key in sorted(self.host_keys.items())}

    def with_provided(self, hosts: list[str], chain_pem: str, key_pem: str) -> PkiMaterial:
        """The same material with the customer's certificate chain and key on ``hosts``."""
        check_provided(chain_pem, key_pem)
        certs = dict(self.host_certs)
        keys = dict(self.host_keys)
        for name in hosts:
            certs[name] = chain_pem
            keys[name] = key_pem
        return PkiMaterial(ca_cert=self.ca_cert, host_certs=certs, host_keys=keys)


def key_env_name(host: str) -> str:
    return "SELFHOST_SECRET_TLS_KEY_" + re.sub(r"[-.]", "_", host).upper()


def generate_ca_key() -> str:
    """A new CA private key (PEM, PKCS#8), to be stored as the secret ``ca_key``."""
    key = ec.generate_private_key(_CURVE)
    return _key_pem(key)


def host_names(plan: Plan) -> dict[str, list[str]]:
    """The subject alternative names each Plan host's certificate must carry (empty: none)."""
    wanted: dict[str, list[str]] = {h.name: [] for h in plan.hosts}
    servers = set()
    if plan.tls.internal:
        servers = {w.server_host for w in (plan.database, plan.cache)
                   if w.mode == "local" and w.server_host is not None}
    for host in plan.hosts:
        names: list[str] = []
        if plan.tls.mode == "self-signed" and "app" in host.components:
            names.append(plan.tls.domain)
        if names or host.name in servers:
            names += [host.name, host.address]
        wanted[host.name] = list(dict.fromkeys(names))
    return wanted


def issue(plan: Plan, ca_key_pem: str | None, state_dir: Path,
          also_trusted_key_pem: str | None = None) -> PkiMaterial:
    """The CA certificate and every host's certificate and key, reusing stored ones.

    With ``also_trusted_key_pem`` (a CA rotation in progress) the trusted CA file
    is a bundle: the certificate of ``ca_key_pem``'s CA, which issues the host
    certificates, then that of the other key's CA.
    """
    wanted = host_names(plan)
    if not any(wanted.values()):
        return PkiMaterial(ca_cert="", host_certs=dict.fromkeys(wanted, ""), host_keys={})
    if not ca_key_pem:
        raise SecretsError("the secrets file has no ca_key, which this profile's TLS needs "
                           "(run `selfhost init` again to generate it)")
    ca_key = _load_ca_key(ca_key_pem)
    now = dt.datetime.now(dt.UTC)
    # A CA rotation's other CA, which hosts and clients trust as well until it ends;
    # looked up first, as ca.crt may still hold it.
    other = "" if not also_trusted_key_pem else _cert_pem(_ca_for(
        _load_ca_key(also_trusted_key_pem), plan.customer.id, state_dir, now, current=False))
    ca_cert = _ca_for(ca_key, plan.customer.id, state_dir, now, current=True)
    trusted = _cert_pem(ca_cert) + other
    certs: dict[str, str] = {}
    keys: dict[str, str] = {}
    for name, sans in wanted.items():
        if not sans:
            certs[name] = ""
            continue
        key = derive_host_key(ca_key, name)
        path = state_dir / "hosts" / f"{name}.crt"
        cert = _stored(path)
        if cert is None or not _host_usable(cert, key, ca_cert, sans, now):
            cert = _make_host(ca_key, ca_cert, key, sans, now)
            _write(path, _cert_pem(cert))
        certs[name] = _cert_pem(cert)
        keys[name] = _key_pem(key)
    return PkiMaterial(ca_cert=trusted, host_certs=certs, host_keys=keys)


def stored_ca(ca_key_pem: str, state_dir: Path) -> x509.Certificate | None:
    """The stored CA certificate of ``ca_key_pem``, if any (nothing is written)."""
    key = _load_ca_key(ca_key_pem)
    return next((c for c in (_stored(state_dir / "ca.crt"),
                             _stored(state_dir / "cas" / _ski_name(key)))
                 if c is not None and _public_der(c.public_key()) == _public_der(
                     key.public_key())), None)


def forget_other_cas(state_dir: Path) -> None:
    """Remove the stored certificates of a rotation's other CA (the rotation ended;
    the current CA stays in ``ca.crt``)."""
    for path in (state_dir / "cas").glob("*.crt"):
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        (state_dir / "cas").rmdir()


def _ski_name(key: ec.EllipticCurvePrivateKey) -> str:
    return x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest.hex() + ".crt"


def _ca_for(key: ec.EllipticCurvePrivateKey, customer: str, state_dir: Path,
            now: dt.datetime, *, current: bool) -> x509.Certificate:
    """The stored CA certificate of ``key``, else a new one. The current one is
    ``ca.crt``; the other CA of a rotation is kept under ``cas/`` by its key, so both
    keep their bytes through the rotation (a redeploy in between changes nothing)."""
    main = state_dir / "ca.crt"
    by_key = state_dir / "cas" / _ski_name(key)
    ca_cert = next((c for c in (_stored(main), _stored(by_key))
                    if c is not None and _ca_usable(c, key, now)), None)
    if ca_cert is None:
        ca_cert = _make_ca(key, customer, now)
    pem = _cert_pem(ca_cert)
    path = main if current else by_key
    if _stored(path) != ca_cert:
        _write(path, pem)
    return ca_cert


def derive_host_key(ca_key: ec.EllipticCurvePrivateKey, host: str) -> ec.EllipticCurvePrivateKey:
    """The host's key, a pure function of the CA key and the host name."""
    secret = ca_key.private_numbers().private_value.to_bytes(32, "big")
    # 48 bytes before the reduction keep the bias below 2^-128 (FIPS 186-5 A.2.1).
    okm = HKDF(algorithm=hashes.SHA256(), length=48, salt=_HKDF_SALT,
               info=b"host:" + host.encode()).derive(secret)
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    scalar = int.from_bytes(okm, "big") % (order - 1) + 1
    return ec.derive_private_key(scalar, _CURVE)


def check_provided(chain_pem: str, key_pem: str) -> None:
    """The customer's chain must parse and its first certificate must match the key."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem.encode())
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except ValueError as exc:
        raise InvalidInput(f"tls.cert_file / tls.key_file: not a PEM certificate chain and "
                           f"unencrypted PEM key ({exc}); export them as PEM") from exc
    if _public_der(chain[0].public_key()) != _public_der(key.public_key()):
        raise InvalidInput("tls.key_file does not belong to the first certificate of "
                           "tls.cert_file (give the server certificate first, then its chain)")


# -- building ---------------------------------------------------------------------

def _make_ca(key: ec.EllipticCurvePrivateKey, customer: str, now: dt.datetime
             ) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "selfhost"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"{customer} internal CA")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )


def _make_host(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
               key: ec.EllipticCurvePrivateKey, sans: list[str],
               now: dt.datetime) -> x509.Certificate:
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sans[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + HOST_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectAlternativeName(_general_names(sans)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _general_names(sans: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for value in sans:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            out.append(x509.DNSName(value))
    return out


# -- reuse checks -----------------------------------------------------------------

def _ca_usable(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, now: dt.datetime
               ) -> bool:
    return (_public_der(cert.public_key()) == _public_der(key.public_key())
            and cert.not_valid_after_utc - now > RENEW_BEFORE)


def _host_usable(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey,
                 ca_cert: x509.Certificate, sans: list[str], now: dt.datetime) -> bool:
    if _public_der(cert.public_key()) != _public_der(key.public_key()):
        return False
    if cert.not_valid_after_utc - now <= RENEW_BEFORE or cert.issuer != ca_cert.subject:
        return False
    # One issued under a longer lifetime (older versions: 825 days) is replaced.
    if cert.not_valid_after_utc - cert.not_valid_before_utc > _HOST_LIFESPAN_MAX:
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError):
        return False
    try:
        have = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return sorted(map(str, have)) == sorted(map(str, _general_names(sans)))


# -- files and encodings ----------------------------------------------------------

def _load_ca_key(pem: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except ValueError as exc:
        raise SecretsError("the secret ca_key is not a PEM private key (generate a new one "
                           "with `selfhost init`)") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != _CURVE.name:
        raise SecretsError("the secret ca_key is not an ECDSA P-256 key (generate a new one "
                           "with `selfhost init`)")
    return key


def _stored(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        # Missing or damaged: issuing a fresh one is the repair.
        return None


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, text.encode(), mode=0o600)


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _public_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)
