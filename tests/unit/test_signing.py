"""Ed25519 signatures: keys, embedded and detached forms, tamper detection."""

from __future__ import annotations

import base64
import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from selfhost.cli.app import main
from selfhost.errors import ChecksFailed, InvalidInput
from selfhost.paths import PROFILES_DIR
from selfhost.plan import plan
from selfhost.profile_io import load_profile
from selfhost.subprocessors.document import Evidence, EvidenceCheck, build_document
from selfhost.subprocessors.render import render_profile
from selfhost.subprocessors.signing import (
    canonical_bytes,
    check_signature,
    generate_keys,
    load_private_key,
    sign_embedded,
)

DAY = date(2026, 11, 27)
PROFILE = PROFILES_DIR / "us-openai.yaml"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    pair = generate_keys(tmp_path / "k.key", tmp_path / "k.pub")
    return pair.private_key, pair.public_key


@pytest.fixture
def signed_json(tmp_path: Path, keys: tuple[Path, Path]) -> Path:
    out = tmp_path / "list.json"
    render_profile(PROFILE, fmt="json", on=DAY, output=out, sign_key=keys[0])
    return out


def test_private_key_is_mode_0600(keys: tuple[Path, Path]) -> None:
    assert keys[0].stat().st_mode & 0o777 == 0o600


def test_existing_keys_are_not_overwritten(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    with pytest.raises(InvalidInput, match=r"already exists.*--force"):
        generate_keys(keys[0], tmp_path / "other.pub")


def test_a_private_key_readable_by_others_is_refused(keys: tuple[Path, Path]) -> None:
    keys[0].chmod(0o644)
    with pytest.raises(InvalidInput, match=r"readable by others.*chmod 600"):
        load_private_key(keys[0])


def test_a_public_key_is_not_a_private_key(keys: tuple[Path, Path]) -> None:
    keys[1].chmod(0o600)
    with pytest.raises(InvalidInput, match="not an unencrypted PEM private key"):
        load_private_key(keys[1])


def test_embedded_signature_verifies(signed_json: Path, keys: tuple[Path, Path]) -> None:
    assert check_signature(signed_json, keys[1]).form == "embedded"


def test_embedded_signature_covers_canonical_json_without_the_signature(
        signed_json: Path, keys: tuple[Path, Path]) -> None:
    data = json.loads(signed_json.read_text())
    signature = base64.b64decode(data.pop("signature")["value"])
    public = load_pem_public_key(keys[1].read_bytes())
    public.verify(signature, canonical_bytes(data))  # type: ignore[union-attr]


def _flip(path: Path, index: int) -> None:
    data = bytearray(path.read_bytes())
    data[index] = ord("X") if data[index] != ord("X") else ord("Y")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", [0.1, 0.25, 0.5, 0.75, 0.9, 0.999])
def test_changing_any_byte_of_an_embedded_list_fails(signed_json: Path,
                                                     keys: tuple[Path, Path],
                                                     where: float) -> None:
    _flip(signed_json, int(len(signed_json.read_bytes()) * where))
    with pytest.raises(ChecksFailed, match="signature check FAILED"):
        check_signature(signed_json, keys[1])


def test_reformatting_an_embedded_list_fails(signed_json: Path, keys: tuple[Path, Path]) -> None:
    signed_json.write_text(json.dumps(json.loads(signed_json.read_text()), indent=4))
    with pytest.raises(ChecksFailed, match="bytes were changed"):
        check_signature(signed_json, keys[1])


def test_changing_a_fact_fails(signed_json: Path, keys: tuple[Path, Path]) -> None:
    signed_json.write_text(signed_json.read_text().replace('"OpenAI, LLC"', '"OpenAI Ltd"'))
    with pytest.raises(ChecksFailed, match="content changed after it was signed"):
        check_signature(signed_json, keys[1])


def test_another_key_is_rejected(tmp_path: Path, signed_json: Path) -> None:
    other = generate_keys(tmp_path / "o.key", tmp_path / "o.pub")
    with pytest.raises(ChecksFailed, match="not with the given public key"):
        check_signature(signed_json, other.public_key)


def test_an_unsigned_list_is_reported(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    out = tmp_path / "plain.json"
    render_profile(PROFILE, fmt="json", on=DAY, output=out)
    with pytest.raises(ChecksFailed, match="no embedded signature"):
        check_signature(out, keys[1])


def test_evidence_is_covered_by_the_signature(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    evidence = Evidence(collected_at="2026-11-27T10:00:00Z", tool_version="0.1.0", checks=[
        EvidenceCheck(host="chat1", check="egress allowlist", result="pass", detail="3 hosts")])
    doc = build_document(plan(load_profile(PROFILE)), on=DAY, evidence=evidence)
    out = tmp_path / "e.json"
    out.write_text(sign_embedded(doc, load_private_key(keys[0])).to_json())
    out.write_text(out.read_text().replace('"pass"', '"fail"'))
    with pytest.raises(ChecksFailed, match="content changed"):
        check_signature(out, keys[1])


@pytest.mark.parametrize("fmt", ["md", "html", "json"])
def test_detached_signature_verifies_every_format(tmp_path: Path, keys: tuple[Path, Path],
                                                  fmt: str) -> None:
    out = tmp_path / f"list.{fmt}"
    render_profile(PROFILE, fmt=fmt, on=DAY, output=out, sign_key=keys[0],  # type: ignore[arg-type]
                   detached=True)
    assert check_signature(out, keys[1]).signature_file == tmp_path / f"list.{fmt}.sig"


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_changing_a_byte_of_a_detached_file_fails(tmp_path: Path, keys: tuple[Path, Path],
                                                  fmt: str) -> None:
    out = tmp_path / f"list.{fmt}"
    render_profile(PROFILE, fmt=fmt, on=DAY, output=out, sign_key=keys[0],  # type: ignore[arg-type]
                   detached=True)
    out.write_bytes(out.read_bytes() + b" ")
    with pytest.raises(ChecksFailed, match="the file changed after it was signed"):
        check_signature(out, keys[1])


def test_embedded_signature_needs_json(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    with pytest.raises(InvalidInput, match="embedded signature needs --format json"):
        render_profile(PROFILE, fmt="md", on=DAY, output=tmp_path / "x.md", sign_key=keys[0])


def test_detached_signature_needs_an_output(keys: tuple[Path, Path]) -> None:
    with pytest.raises(InvalidInput, match="--detached needs --sign-key and --output"):
        render_profile(PROFILE, fmt="md", on=DAY, sign_key=keys[0], detached=True)


# -- CLI -----------------------------------------------------------------------------

def test_cli_generate_then_sign_then_check(tmp_path: Path) -> None:
    runner = CliRunner()
    generated = runner.invoke(main, ["keys", "generate", "--output-dir", str(tmp_path)])
    key, pub = tmp_path / "subprocessors-signing.key", tmp_path / "subprocessors-signing.pub"
    out = tmp_path / "l.json"
    rendered = runner.invoke(main, ["subprocessors", "render", str(PROFILE), "--format", "json",
                                    "--sign-key", str(key), "--output", str(out)])
    checked = runner.invoke(main, ["subprocessors", "check-signature", str(out),
                                   "--public-key", str(pub)])
    assert (generated.exit_code, rendered.exit_code, checked.exit_code,
            "signature valid (embedded" in checked.stdout) == (0, 0, 0, True)


def test_cli_check_of_a_tampered_file_exits_1_with_a_message(signed_json: Path,
                                                             keys: tuple[Path, Path]) -> None:
    signed_json.write_text(signed_json.read_text().replace("SendGrid", "SendGrit"))
    result = CliRunner().invoke(main, ["subprocessors", "check-signature", str(signed_json),
                                       "--public-key", str(keys[1])])
    assert (result.exit_code, "signature check FAILED" in result.stderr) == (1, True)


def test_cli_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(main, ["keys", "generate", "--output-dir", str(tmp_path)])
    again = runner.invoke(main, ["keys", "generate", "--output-dir", str(tmp_path)])
    assert (again.exit_code, "already exists" in again.stderr) == (2, True)
