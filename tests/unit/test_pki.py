"""The internal CA: chains, names, stability across deploys, reissue on change."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from selfhost import pki
from selfhost.errors import InvalidInput, SecretsError
from selfhost.models import Profile
from selfhost.paths import preset_path
from selfhost.plan import Plan, plan
from selfhost.profile_io import load_profile


def _plan(preset: str, **changes: object) -> Plan:
    data = load_profile(preset_path(preset)).model_dump(mode="json")
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    return plan(Profile.model_validate(data))


@pytest.fixture(scope="module")
def ca_key() -> str:
    return pki.generate_ca_key()


def _cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def _sans(pem: str) -> set[str]:
    ext = _cert(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in ext.get_values_for_type(x509.DNSName)} | {
        str(v) for v in ext.get_values_for_type(x509.IPAddress)}


def test_ca_key_is_p256_pem() -> None:
    key = serialization.load_pem_private_key(pki.generate_ca_key().encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"


def test_host_certificates_verify_against_the_ca(ca_key: str, tmp_path: Path) -> None:
    material = pki.issue(_plan("split"), ca_key, tmp_path)
    ca = _cert(material.ca_cert)
    ca.verify_directly_issued_by(ca)
    for name in ("app1", "app2", "db1", "cache1"):
        _cert(material.host_certs[name]).verify_directly_issued_by(ca)


def test_ca_is_a_ca_and_host_certs_are_server_certs(ca_key: str, tmp_path: Path) -> None:
    material = pki.issue(_plan("split"), ca_key, tmp_path)
    assert _cert(material.ca_cert).extensions.get_extension_for_class(
        x509.BasicConstraints).value.ca
    host = _cert(material.host_certs["db1"])
    assert not host.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = host.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert host.not_valid_after_utc - host.not_valid_before_utc <= dt.timedelta(days=826)


@pytest.mark.parametrize(("host", "expected"), [
    ("app1", {"chat.example.org", "app1", "192.0.2.11"}),
    ("app2", {"chat.example.org", "app2", "192.0.2.12"}),
    ("db1", {"db1", "192.0.2.21"}),
    ("cache1", {"cache1", "192.0.2.31"}),
])
def test_split_host_names(ca_key: str, tmp_path: Path, host: str, expected: set[str]) -> None:
    assert _sans(pki.issue(_plan("split"), ca_key, tmp_path).host_certs[host]) == expected


def test_address_is_an_ip_san(ca_key: str, tmp_path: Path) -> None:
    cert = _cert(pki.issue(_plan("air-gapped"), ca_key, tmp_path).host_certs["chat1"])
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ext.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.0.2.10")]


def test_host_key_matches_its_certificate(ca_key: str, tmp_path: Path) -> None:
    material = pki.issue(_plan("split"), ca_key, tmp_path)
    key = serialization.load_pem_private_key(material.host_keys["db1"].encode(), None)
    cert_pub = _cert(material.host_certs["db1"]).public_key()
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key.public_key().public_bytes(*fmt) == cert_pub.public_bytes(*fmt)


def test_host_keys_are_derived_per_host(ca_key: str, tmp_path: Path) -> None:
    first = pki.issue(_plan("split"), ca_key, tmp_path / "a")
    second = pki.issue(_plan("split"), ca_key, tmp_path / "b")
    assert first.host_keys == second.host_keys
    assert len(set(first.host_keys.values())) == 4


def test_stable_across_calls(ca_key: str, tmp_path: Path) -> None:
    first = pki.issue(_plan("split"), ca_key, tmp_path)
    second = pki.issue(_plan("split"), ca_key, tmp_path)
    assert first == second


def test_reissue_when_names_change(ca_key: str, tmp_path: Path) -> None:
    pki.issue(_plan("split"), ca_key, tmp_path)
    after = pki.issue(_plan("split", hosts__database={"name": "db1", "address": "192.0.2.22"}),
                      ca_key, tmp_path)
    assert _sans(after.host_certs["db1"]) == {"db1", "192.0.2.22"}


def test_reissue_touches_only_the_changed_host(ca_key: str, tmp_path: Path) -> None:
    before = pki.issue(_plan("split"), ca_key, tmp_path)
    after = pki.issue(_plan("split", hosts__database={"name": "db1", "address": "192.0.2.22"}),
                      ca_key, tmp_path)
    assert (after.ca_cert, after.host_certs["cache1"]) == (before.ca_cert,
                                                            before.host_certs["cache1"])


def test_new_ca_key_reissues_everything(ca_key: str, tmp_path: Path) -> None:
    before = pki.issue(_plan("split"), ca_key, tmp_path)
    after = pki.issue(_plan("split"), pki.generate_ca_key(), tmp_path)
    _cert(after.host_certs["db1"]).verify_directly_issued_by(_cert(after.ca_cert))
    assert after.host_certs["db1"] != before.host_certs["db1"]


def test_damaged_stored_certificate_is_replaced(ca_key: str, tmp_path: Path) -> None:
    pki.issue(_plan("split"), ca_key, tmp_path)
    (tmp_path / "hosts" / "db1.crt").write_text("not a certificate")
    material = pki.issue(_plan("split"), ca_key, tmp_path)
    _cert(material.host_certs["db1"]).verify_directly_issued_by(_cert(material.ca_cert))


def test_expiring_certificate_is_renewed(ca_key: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pki, "HOST_VALIDITY", dt.timedelta(days=10))
    short = pki.issue(_plan("split"), ca_key, tmp_path)
    monkeypatch.setattr(pki, "HOST_VALIDITY", dt.timedelta(days=90))
    renewed = pki.issue(_plan("split"), ca_key, tmp_path)
    assert renewed.host_certs["db1"] != short.host_certs["db1"]


def _lifespan(pem: str) -> dt.timedelta:
    cert = _cert(pem)
    return cert.not_valid_after_utc - cert.not_valid_before_utc


def test_host_certificates_live_at_most_90_days(ca_key: str, tmp_path: Path) -> None:
    material = pki.issue(_plan("split"), ca_key, tmp_path)
    spans = {h: _lifespan(c).days for h, c in material.host_certs.items() if c}
    assert (bool(spans), max(spans.values(), default=0) <= 90) == (True, True), spans


def test_certificate_with_more_than_30_days_left_is_kept(
        ca_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pki, "HOST_VALIDITY", dt.timedelta(days=31))
    first = pki.issue(_plan("split"), ca_key, tmp_path)
    monkeypatch.setattr(pki, "HOST_VALIDITY", dt.timedelta(days=90))
    again = pki.issue(_plan("split"), ca_key, tmp_path)
    assert again.host_certs["db1"] == first.host_certs["db1"]


def test_certificate_issued_for_longer_than_90_days_is_replaced(
        ca_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pki, "HOST_VALIDITY", dt.timedelta(days=825))
    pki.issue(_plan("split"), ca_key, tmp_path)
    monkeypatch.setattr(pki, "HOST_VALIDITY", dt.timedelta(days=90))
    replaced = pki.issue(_plan("split"), ca_key, tmp_path)
    assert _lifespan(replaced.host_certs["db1"]).days <= 90


def test_keys_are_not_in_repr(ca_key: str, tmp_path: Path) -> None:
    material = pki.issue(_plan("split"), ca_key, tmp_path)
    assert "PRIVATE KEY" not in repr(material)


def test_extravars_hold_no_keys(ca_key: str, tmp_path: Path) -> None:
    extravars = pki.issue(_plan("split"), ca_key, tmp_path).as_extravars()
    assert "PRIVATE KEY" not in repr(extravars)


def test_extravars_shape(ca_key: str, tmp_path: Path) -> None:
    material = pki.issue(_plan("split", tls__mode="acme", tls__acme={
        "provider": "customer", "directory_url": "https://acme.example.org/dir"}),
        ca_key, tmp_path)
    hosts = material.as_extravars()["hosts"]
    assert hosts == {"app1": {}, "app2": {}, "cache1": {"cert": material.host_certs["cache1"]},
                     "db1": {"cert": material.host_certs["db1"]}}


def test_secret_env_names(ca_key: str, tmp_path: Path) -> None:
    material = pki.issue(_plan("split"), ca_key, tmp_path)
    assert sorted(material.secret_env()) == [
        "SELFHOST_SECRET_TLS_KEY_APP1", "SELFHOST_SECRET_TLS_KEY_APP2",
        "SELFHOST_SECRET_TLS_KEY_CACHE1", "SELFHOST_SECRET_TLS_KEY_DB1"]


def test_key_env_name_replaces_dashes_and_dots() -> None:
    assert pki.key_env_name("chat-1.example") == "SELFHOST_SECRET_TLS_KEY_CHAT_1_EXAMPLE"


def test_no_internal_tls_needs_no_ca_key(tmp_path: Path) -> None:
    material = pki.issue(_plan("air-gapped", tls__mode="acme", tls__acme={
        "provider": "customer", "directory_url": "https://acme.example.org/dir"}),
        None, tmp_path)
    assert (material.ca_cert, material.host_certs, material.host_keys) == ("", {"chat1": ""}, {})


def test_missing_ca_key_is_a_secrets_error(tmp_path: Path) -> None:
    with pytest.raises(SecretsError, match="ca_key"):
        pki.issue(_plan("split"), None, tmp_path)


def test_wrong_ca_key_type_is_a_secrets_error(tmp_path: Path) -> None:
    other = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    with pytest.raises(SecretsError, match="P-256"):
        pki.issue(_plan("split"), other, tmp_path)


def test_state_is_written_atomically_and_only_public(ca_key: str, tmp_path: Path) -> None:
    pki.issue(_plan("split"), ca_key, tmp_path)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["ca.crt", "hosts/app1.crt", "hosts/app2.crt", "hosts/cache1.crt",
                     "hosts/db1.crt"]


def test_provided_chain_replaces_app_certificates(ca_key: str, tmp_path: Path) -> None:
    internal = pki.issue(_plan("split"), ca_key, tmp_path)
    chain, key = internal.host_certs["db1"], internal.host_keys["db1"]
    provided = internal.with_provided(["app1"], chain, key)
    assert (provided.host_certs["app1"], provided.host_keys["app1"]) == (chain, key)


def test_provided_key_must_match_the_chain(ca_key: str, tmp_path: Path) -> None:
    internal = pki.issue(_plan("split"), ca_key, tmp_path)
    with pytest.raises(InvalidInput, match="does not belong"):
        internal.with_provided(["app1"], internal.host_certs["db1"], internal.host_keys["app1"])
