"""Provided certificates: each problem nginx or a browser would hit, found first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from selfhost.certs import check_provided, matches_domain
from selfhost.cli import main

NOW = datetime(2026, 6, 1, tzinfo=UTC)
DOMAIN = "chat.acme.example"

PROFILE = """\
customer:
  name: ACME
  id: acme
  contact_email: dpo@acme.example
  residency: DE
hosts:
  app:
    - name: chat1
      address: 192.0.2.10
tls:
  mode: provided
  domain: chat.acme.example
  cert_file: tls/cert.pem
  key_file: tls/key.pem
"""


def _key_pem(key: Any) -> bytes:
    pem: bytes = key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
    return pem


def make_pair(*, names: tuple[str, ...] = (DOMAIN,), not_before: datetime = NOW - timedelta(
        days=10), not_after: datetime = NOW + timedelta(days=90), rsa_bits: int | None = None,
              san: bool = True) -> tuple[bytes, bytes]:
    key: Any = (rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
                if rsa_bits else ec.generate_private_key(ec.SECP256R1()))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after))
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _check(tmp_path: Path, cert: bytes, key: bytes) -> list[tuple[str, str, bool]]:
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert)
    key_path.write_bytes(key)
    return [(p.field, p.message, p.warning)
            for p in check_provided(cert_path, key_path, DOMAIN, NOW)]


def _mismatched() -> tuple[bytes, bytes]:
    cert, _ = make_pair()
    _, other_key = make_pair()
    return cert, other_key


def _crlf() -> tuple[bytes, bytes]:
    cert, key = make_pair()
    return cert.replace(b"\n", b"\r\n"), key


def _junk() -> tuple[bytes, bytes]:
    cert, key = make_pair()
    return b"Bag Attributes: friendly name\n" + cert, key


def _unparsable() -> tuple[bytes, bytes]:
    _, key = make_pair()
    return b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", key


def _swapped() -> tuple[bytes, bytes]:
    cert, key = make_pair()
    return key, cert


BAD: list[tuple[str, Any, str, str]] = [
    ("unparsable PEM", _unparsable, "tls.cert_file", "not a parsable PEM certificate"),
    ("unparsable key", lambda: (make_pair()[0],
                                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
     "tls.key_file", "not a parsable PEM private key"),
    ("no PEM at all", lambda: (b"hello\n", make_pair()[1]), "tls.cert_file", "no PEM block"),
    ("CRLF line endings", _crlf, "tls.cert_file", "CRLF"),
    ("junk around the PEM block", _junk, "tls.cert_file", "text outside its PEM blocks"),
    ("files swapped", _swapped, "tls.cert_file", "PRIVATE KEY block where CERTIFICATE"),
    ("key does not match", _mismatched, "tls.key_file", "does not match the certificate"),
    ("expired", lambda: make_pair(not_after=NOW - timedelta(days=1)), "tls.cert_file",
     "expired on"),
    ("not yet valid", lambda: make_pair(not_before=NOW + timedelta(days=1)), "tls.cert_file",
     "not valid before"),
    ("domain not in SAN", lambda: make_pair(names=("other.acme.example",)), "tls.domain",
     "not in the certificate's subjectAltName"),
    ("no SAN at all", lambda: make_pair(san=False), "tls.domain", "it lists: none"),
    ("RSA below 2048 bits", lambda: make_pair(rsa_bits=1024), "tls.cert_file",
     "1024 bits, fewer than 2048"),
]


@pytest.mark.parametrize(("factory", "field", "fragment"),
                         [pytest.param(f, fi, fr, id=i) for i, f, fi, fr in BAD])
def test_bad_certificate_is_an_error(tmp_path: Path, factory: Any, field: str,
                                     fragment: str) -> None:
    assert any(f == field and fragment in m and not w
               for f, m, w in _check(tmp_path, *factory()))


def test_expiry_within_30_days_is_a_warning(tmp_path: Path) -> None:
    problems = _check(tmp_path, *make_pair(not_after=NOW + timedelta(days=20)))
    assert problems == [("tls.cert_file", "the certificate expires on 2026-06-21, in 20 days "
                         "(renew it soon)", True)]


@pytest.mark.parametrize("names", [(DOMAIN,), ("*.acme.example",), ("x.example", DOMAIN)])
def test_good_certificate_has_no_problem(tmp_path: Path, names: tuple[str, ...]) -> None:
    assert _check(tmp_path, *make_pair(names=names)) == []


def test_rsa_2048_is_accepted(tmp_path: Path) -> None:
    assert _check(tmp_path, *make_pair(rsa_bits=2048)) == []


@pytest.mark.parametrize(("pattern", "domain", "expected"), [
    ("*.acme.example", "chat.acme.example", True),
    ("*.acme.example", "a.chat.acme.example", False),
    ("*.acme.example", "acme.example", False),
    ("CHAT.acme.example", "chat.acme.example.", True),
])
def test_wildcards_cover_one_label(pattern: str, domain: str, expected: bool) -> None:
    assert matches_domain(pattern, domain) is expected


def _profile_with(tmp_path: Path, cert: bytes, key: bytes) -> Path:
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "cert.pem").write_bytes(cert)
    (tmp_path / "tls" / "key.pem").write_bytes(key)
    profile = tmp_path / "acme.yaml"
    profile.write_text(PROFILE)
    return profile


def test_validate_prints_expiry_warning_and_exits_0(tmp_path: Path) -> None:
    soon = datetime.now(UTC) + timedelta(days=10)
    profile = _profile_with(tmp_path, *make_pair(not_before=soon - timedelta(days=80),
                                                 not_after=soon))
    result = CliRunner().invoke(main, ["validate", str(profile)])
    assert (result.exit_code, "warning: tls.cert_file: the certificate expires" in
            result.output) == (0, True)


def test_validate_reports_relative_cert_problem_with_line(tmp_path: Path) -> None:
    cert, _ = make_pair()
    _, other = make_pair()
    profile = _profile_with(tmp_path, cert, other)
    result = CliRunner().invoke(main, ["validate", str(profile)])
    assert (result.exit_code, f"{profile}:14: tls.key_file: {tmp_path}/tls/key.pem does not "
            "match" in result.output) == (2, True)
