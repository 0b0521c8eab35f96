"""Hiding secret values in output and finding them in files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfhost.deploy.redact import MASK, Hit, Redactor, fragments, scan

PEM = ("-----BEGIN PRIVATE KEY-----\n"
       "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgabcdefghijklmnop\n"
       "qrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqr\n"
       "-----END PRIVATE KEY-----\n")


def test_fragments_of_a_pem_key_are_its_body_lines_not_its_armour() -> None:
    got = fragments(PEM)
    lines = PEM.splitlines()
    assert (PEM in got, json.dumps(PEM)[1:-1] in got, lines[1] in got, lines[2] in got,
            lines[0] in got, lines[3] in got) == (True, True, True, True, False, False)


@pytest.mark.parametrize("text", [
    "password=hunter2-long-value in a message",
    'json: "hunter2-long-value"',
])
def test_redact_masks_the_value(text: str) -> None:
    assert "hunter2-long-value" not in Redactor({"p": "hunter2-long-value"}).redact(text)


def test_redact_masks_one_line_of_a_pem_key() -> None:
    line = PEM.splitlines()[2]
    assert Redactor({"k": PEM}).redact(f"stderr: {line}") == f"stderr: {MASK}"


def test_redact_masks_a_json_escaped_pem_key() -> None:
    text = json.dumps({"content": PEM})
    assert "MIGHAgEAMBMG" not in Redactor({"k": PEM}).redact(text)


def test_empty_values_are_ignored() -> None:
    assert Redactor({"empty": ""}).redact("anything") == "anything"


def test_find_names_the_secret_not_the_value() -> None:
    assert Redactor({"db": "aaaa-bbbb-cccc", "ai": "zzzz-yyyy-xxxx"}).find(
        "x aaaa-bbbb-cccc y") == ["db"]


def test_scan_reports_file_and_secret_name(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "events.json").write_text('{"stdout": "key aaaa-bbbb-cccc"}')
    (tmp_path / "clean.txt").write_text("nothing here")
    hits = scan([tmp_path], Redactor({"db": "aaaa-bbbb-cccc"}))
    assert hits == [Hit(tmp_path / "a" / "events.json", "db")]


def test_scan_finds_a_secret_in_a_binary_file(tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(b"\xff\xfe aaaa-bbbb-cccc \x00")
    assert [h.secret for h in scan([tmp_path], Redactor({"db": "aaaa-bbbb-cccc"}))] == ["db"]


SECRET = 'p@ss/wo%rd"$`\\+end'


@pytest.mark.parametrize(("form", "encoded"), [
    ("URL-encoded (a password inside DATABASE_URL)", "p%40ss%2Fwo%25rd%22%24%60%5C%2Bend"),
    ("form-encoded", "p%40ss%2Fwo%25rd%22%24%60%5C%2Bend"),
    ("escaped for the app's environment file", 'p@ss/wo%rd\\"\\$\\`\\\\+end'),
    ("escaped for a systemd unit line", 'p@ss/wo%%rd"$`\\+end'),
    ("base64 (slurp, copy content)", "cEBzcy93byVyZCIkYFwrZW5k"),
    ("JSON-escaped", 'p@ss/wo%rd\\"$`\\\\+end'),
    ("JSON-escaped env-file form", 'p@ss/wo%rd\\\\\\"\\\\$\\\\`\\\\\\\\+end'),
])
def test_redact_knows_every_form_a_secret_takes_in_a_file(form: str, encoded: str) -> None:
    assert encoded != SECRET
    text = f"DATABASE_URL=postgresql://u:{encoded}@db/x"
    assert Redactor({"database_password": SECRET}).redact(text) == (
        f"DATABASE_URL=postgresql://u:{MASK}@db/x"), form


def test_a_key_line_of_public_bytes_only_is_not_a_secret_but_the_rest_is() -> None:
    # A certificate carries its key's public point; the line of a PKCS#8 EC key that
    # holds nothing else can appear in the certificate's base64, and is no leak.
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    point = key.public_key().public_bytes(serialization.Encoding.X962,
                                          serialization.PublicFormat.UncompressedPoint)
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    body = pem.splitlines()[1:-1]
    public = [line for line in body if base64.b64decode(line + "=" * (-len(line) % 4))
              in point]
    secret = [line for line in body if scalar[:8] in base64.b64decode(line)]
    redactor = Redactor({"tls_key": pem})
    assert (len(public), len(secret),
            [redactor.redact(f"cert: {line}") for line in public],
            [redactor.redact(f"cert: {line}") for line in secret]) == (
        1, 1, [f"cert: {public[0]}"], [f"cert: {MASK}"])
