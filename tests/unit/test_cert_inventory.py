"""``selfhost certs`` without hosts: which files each host is read for, what the host
script returns (certificates only, never a key), and the levels of expiry."""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from selfhost import cert_inventory
from selfhost.paths import preset_path
from selfhost.plan import plan
from selfhost.profile_io import load_profile

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _cert(days: int, cn: str = "chat.example.com") -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def test_split_hosts_are_read_for_their_own_files() -> None:
    files = cert_inventory.cert_files(plan(load_profile(preset_path("split"))))
    paths = {host: [f.path for f in fs] for host, fs in files.items()}
    assert paths == {
        **{app: ["/etc/backend-chat/ca.crt", "/etc/backend-chat/tls/server.crt",
                 "/etc/nginx/tls/server.crt"] for app in ("app1", "app2")},
        "db1": ["/etc/backend-chat/ca.crt", "/etc/backend-chat/tls/server.crt",
                "/etc/postgresql/*/main/tls/server.crt"],
        "cache1": ["/etc/backend-chat/ca.crt", "/etc/backend-chat/tls/server.crt",
                   "/etc/redis/tls/server.crt", "/etc/redis/tls/ca.crt"],
    }


def test_the_host_script_returns_certificates_and_never_a_key(tmp_path: Path) -> None:
    cert, key = _cert(60)
    both = tmp_path / "both.pem"
    both.write_text(cert + key)
    spec = {"paths": [str(both), str(tmp_path / "gone.crt"), str(tmp_path / "*.none")]}
    command = cert_inventory.remote_command(spec)
    # The command as a shell on the host runs it, with this interpreter as python3.
    done = subprocess.run(["bash", "-c", command.replace("python3", sys.executable, 1)],
                          capture_output=True, text=True, check=True)
    raw = json.loads(done.stdout)
    assert "PRIVATE KEY" not in done.stdout
    assert raw["files"][str(both)]["pem"] == [cert.strip()]
    assert raw["files"][str(tmp_path / "gone.crt")]["error"] == "No such file or directory"
    assert raw["files"][str(tmp_path / "*.none")] == {"error": "no such file"}
    # Nothing secret travels in the command line either.
    assert base64.b64encode(key.encode()).decode()[:40] not in command


def test_levels_and_what_needs_attention() -> None:
    files = [cert_inventory.CertFile("/p.crt", "provided", "served by nginx"),
             cert_inventory.CertFile("/i.crt", "internal", "staged")]
    long, _ = _cert(60)
    soon, _ = _cert(20)
    raw: dict[str, object] = {"files": {"/p.crt": {"pem": [soon, long]},
                                        "/i.crt": {"pem": [_cert(3)[0]]}}}
    host = cert_inventory.parse("chat1", files, raw, NOW)
    assert [(c.path, c.index, c.level) for c in host.certs] == [
        ("/i.crt", 0, "critical"), ("/p.crt", 0, "warning"), ("/p.crt", 1, "ok")]
    todo = cert_inventory.attention([host])
    assert len(todo) == 1
    assert todo[0].startswith("chat1: /i.crt (CN=chat.example.com) "
                              "expires in 3 days: run `selfhost deploy`")
    report = cert_inventory.to_json([host])
    assert report["ok"] is False
    assert "CRIT /i.crt" in cert_inventory.render([host])


def test_an_unreadable_host_and_a_stopped_timer_need_attention() -> None:
    down = cert_inventory.parse("chat1", [], "ssh exited 255: refused", NOW)
    timer = cert_inventory.parse("chat1", [], {"files": {}, "timer": {
        "ActiveState": "inactive"}}, NOW)
    assert cert_inventory.attention([down]) == ["chat1: not read: ssh exited 255: refused"]
    assert "certbot.timer is inactive" in cert_inventory.attention([timer])[0]
