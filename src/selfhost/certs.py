"""Checks of a customer-provided TLS certificate and key (``tls.mode: provided``).

nginx refuses a key that does not match its certificate, and browsers refuse
an expired certificate or one without the domain in its subjectAltName; these
checks find such problems on the controller, before anything is deployed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from selfhost import inputs

#: warn when the certificate expires within this time
EXPIRY_WARNING = timedelta(days=30)
MIN_RSA_BITS = 2048

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\n[A-Za-z0-9+/=\n]*?-----END \1-----\n?")


@dataclass(frozen=True)
class CertProblem:
    field: str
    message: str
    warning: bool = False


def _pem_shape(data: bytes, field: str, path: Path, labels: tuple[str, ...]) -> list[CertProblem]:
    """CRLF line ends and text outside the PEM blocks, which some tools reject."""
    if b"\r" in data:
        return [CertProblem(field, f"{path} has CRLF line endings (convert it with "
                            "dos2unix or sed -i 's/\\r$//')")]
    blocks = [m.group(1).decode() for m in _BLOCK.finditer(data)]
    if not blocks:
        return [CertProblem(field, f"{path} holds no PEM block (expected -----BEGIN "
                            f"{labels[0]}-----)")]
    rest = _BLOCK.sub(b"", data)
    if rest.strip():
        return [CertProblem(field, f"{path} has text outside its PEM blocks (keep only the "
                            "-----BEGIN ... END----- blocks)")]
    wrong = [b for b in blocks if b not in labels]
    if wrong:
        return [CertProblem(field, f"{path} holds a {wrong[0]} block where "
                            f"{' or '.join(labels)} was expected (check which file is which)")]
    return []


def _load_chain(data: bytes, path: Path) -> list[x509.Certificate] | CertProblem:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        return CertProblem("tls.cert_file", f"{path} is not a parsable PEM certificate "
                           "(export it again in PEM format)")


def _load_key(data: bytes, path: Path) -> object:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        return CertProblem("tls.key_file", f"{path} is encrypted with a passphrase (store "
                           "it unencrypted: openssl pkey -in KEY -out KEY.plain)")
    except (ValueError, Exception):  # cryptography raises several types for bad input
        return CertProblem("tls.key_file", f"{path} is not a parsable PEM private key "
                           "(export it again in PEM format)")


def _public_der(key: object) -> bytes:
    public = key.public_key()  # type: ignore[attr-defined]
    der: bytes = public.public_bytes(serialization.Encoding.DER,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def _dns_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [name.lower() for name in san.get_values_for_type(x509.DNSName)]


def matches_domain(pattern: str, domain: str) -> bool:
    """Whether a SAN entry covers ``domain`` (a wildcard covers exactly one label)."""
    pattern, domain = pattern.lower().rstrip("."), domain.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, tail = domain.partition(".")
        return bool(head) and tail == pattern[2:]
    return pattern == domain


def check_provided(cert_path: Path, key_path: Path, domain: str,
                   now: datetime) -> list[CertProblem]:
    """Every problem of a certificate/key pair for ``domain`` at time ``now`` (aware)."""
    cert_data = inputs.read_bytes(cert_path, inputs.PEM_LIMIT)
    key_data = inputs.read_bytes(key_path, inputs.PEM_LIMIT)
    problems = _pem_shape(cert_data, "tls.cert_file", cert_path, ("CERTIFICATE",))
    problems += _pem_shape(key_data, "tls.key_file", key_path,
                           ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"))
    if problems:
        return problems
    chain = _load_chain(cert_data, cert_path)
    key = _load_key(key_data, key_path)
    problems += [p for p in (chain, key) if isinstance(p, CertProblem)]
    if problems:
        return problems
    assert isinstance(chain, list)
    leaf = chain[0]

    if _public_der(leaf) != _public_der(key):
        problems.append(CertProblem("tls.key_file", f"{key_path} does not match the "
                                    f"certificate {cert_path} (use the key the certificate "
                                    "was issued for)"))
    for what, public in (("certificate", leaf.public_key()),
                         ("key", key.public_key())):  # type: ignore[attr-defined]
        if isinstance(public, rsa.RSAPublicKey) and public.key_size < MIN_RSA_BITS:
            problems.append(CertProblem(
                "tls.cert_file" if what == "certificate" else "tls.key_file",
                f"the {what}'s RSA key has {public.key_size} bits, fewer than "
                f"{MIN_RSA_BITS} (issue a new certificate with an RSA-2048+ or EC key)"))

    start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if now < start:
        problems.append(CertProblem("tls.cert_file", f"the certificate is not valid before "
                                    f"{start:%Y-%m-%d %H:%M} UTC (check the host clock or "
                                    "wait until then)"))
    elif now >= end:
        problems.append(CertProblem("tls.cert_file", f"the certificate expired on "
                                    f"{end:%Y-%m-%d} (renew it)"))
    elif end - now <= EXPIRY_WARNING:
        problems.append(CertProblem("tls.cert_file", f"the certificate expires on "
                                    f"{end:%Y-%m-%d}, in {(end - now).days} days (renew it "
                                    "soon)", warning=True))

    names = _dns_names(leaf)
    if not any(matches_domain(n, domain) for n in names):
        listed = ", ".join(names) if names else "none"
        problems.append(CertProblem("tls.domain", f"{domain} is not in the certificate's "
                                    f"subjectAltName (it lists: {listed}) (use a "
                                    "certificate issued for the domain, or fix tls.domain)"))
    return problems
