"""support-bundle on a real guest: what it holds, and that no secret is in it.

One guest, deployed once per module. Secret values are planted where a bundle
looks (a config comment, a file of notes in the config directory, the journal
through ``logger``, an environment-looking line), in several encodings, plus
credentials the profile does not know (a foreign API key, a DSN with a
password). The archive is then extracted and searched with a scanner written
here, independent of selfhost's redactor.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import sys
import tarfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from deploy_support import (
    PASSPHRASE,
    Deployment,
    make_profile,
    run_deploy,
    secret_values,
    ssh,
)

from conftest import SandboxFactory
from selfhost.targets.inventory import read_hosts

pytestmark = pytest.mark.slow

PRESET = "eu-anthropic"
SELFHOST = str(Path(sys.executable).with_name("selfhost"))
MARKER = "bundle-marker-" + secrets.token_hex(8)
#: credentials the profile does not know: only their shape can give them away
FOREIGN = {
    "foreign API key": "sk-proj-" + secrets.token_urlsafe(30),
    "foreign DSN password": "dsnpw-" + secrets.token_urlsafe(18),
    "foreign bearer token": secrets.token_urlsafe(32),
    "foreign private key": ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode(),
}
NOTES = "/etc/backend-chat/support-notes.txt"
#: the app's syslog identifier: the name of its unit
APP_TAG = "backend-chat"
COUNTERS = re.compile(r"counter packets \d+ bytes \d+")


@dataclass
class Bundled:
    deployment: Deployment
    guest: str
    values: dict[str, str]
    archive: Path
    extracted: Path
    root: Path
    rc: int
    stdout: str
    stderr: str

    def part(self, name: str) -> str:
        return (self.root / name).read_text(encoding="utf-8")

    def on_host(self, *argv: str) -> str:
        done = ssh(self.deployment.box, self.guest, *argv)
        assert done.returncode == 0, f"{argv}: {done.stderr}"
        return done.stdout


# -- the independent scanner --------------------------------------------------------

def forms(value: str) -> set[str]:
    """``value`` as it could appear in text: raw, base64 (padded, unpadded, URL-safe),
    URL-encoded, hex, JSON-escaped, shell-escaped; each line of a multi-line value."""
    raw = value.encode()
    out = {value, base64.b64encode(raw).decode(), base64.b64encode(raw).decode().rstrip("="),
           base64.urlsafe_b64encode(raw).decode().rstrip("="),
           urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value),
           raw.hex(), raw.hex().upper(), json.dumps(value)[1:-1],
           json.dumps(value, ensure_ascii=False)[1:-1],
           value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")}
    for raw_line in value.splitlines():
        line = raw_line.strip()
        if len(line) >= 16 and not line.startswith("-----"):
            out.add(line)
    return {f for f in out if len(f) >= 8}


def findings(text: str, values: dict[str, str]) -> list[str]:
    return sorted({f"{name} ({'raw' if form == value else 'encoded'})"
                   for name, value in values.items() for form in forms(value)
                   if form in text})


def scan_tree(root: Path, values: dict[str, str]) -> list[str]:
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", errors="replace")
        hits += [f"{path.relative_to(root)}: {h}" for h in findings(text, values)]
    return hits


# -- planting -----------------------------------------------------------------------

def plant(deployment: Deployment, guest: str, values: dict[str, str]) -> None:
    box = deployment.box
    plan = deployment.plan
    one_line = {n: v for n, v in values.items() if "\n" not in v}
    notes = ["# kept by the operator while debugging"]
    for name, value in one_line.items():
        raw = value.encode()
        notes += [f"{name.upper()}={value}", f"{name}_b64: {base64.b64encode(raw).decode()}",
                  f"{name} hex {raw.hex()} url {urllib.parse.quote(value, safe='')}",
                  f'{{"note": "{json.dumps(value)[1:-1]}"}}']
    pem = next(v for n, v in values.items() if n.startswith("tls_key_"))
    notes += ["a key pasted by mistake:", pem, "and another one:",
              FOREIGN["foreign private key"]]
    notes += [f"export PAYMENTS_API_KEY={FOREIGN['foreign API key']}",
              f"legacy: postgresql://report:{FOREIGN['foreign DSN password']}@db1:5432/r",
              f"curl -H 'Authorization: Bearer {FOREIGN['foreign bearer token']}'"]
    text = "\n".join(notes) + "\n"
    done = subprocess.run(box.ssh_command(guest, "sh", "-c", f"cat > {NOTES}"),
                          input=text, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    db = values["database_password"]
    comment = f"# old password {db} (base64 {base64.b64encode(db.encode()).decode()})"
    site = plan.layout.nginx_site_file
    done = subprocess.run(box.ssh_command(guest, "sh", "-c", f"cat >> {site}"),
                          input=comment + "\n", capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    key = values["app_secret_key"]
    for line in (f"{MARKER} start", f"{MARKER} connecting with password={db}",
                 f"{MARKER} SECRET_KEY={key} token {FOREIGN['foreign bearer token']}"):
        assert ssh(box, guest, "logger", "-t", APP_TAG, line).returncode == 0
    # A refused request through the proxy (loopback, the app user): a verdict to count.
    probe = (f"import socket;s=socket.create_connection(('127.0.0.1',{plan.proxy_port}),"
             "timeout=30);s.sendall(b'CONNECT unlisted.invalid:443 HTTP/1.1\\r\\nHost: "
             "unlisted.invalid:443\\r\\n\\r\\n');print(s.recv(200).split()[1].decode())")
    status = ssh(box, guest, "runuser", "-u", plan.layout.app_user, "--", "python3", "-c",
                 probe)
    assert status.stdout.strip() == "403", status
    logged = ssh(box, guest, "sh", "-c", "for i in $(seq 300); do grep -q 'CONNECT "
                 f"unlisted.invalid:443' {plan.layout.proxy_log} && exit 0; sleep 0.1; done; "
                 "exit 1")
    assert logged.returncode == 0, "the proxy never logged the refused request"


@pytest.fixture(scope="module")
def bundled(sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
            ) -> Bundled:
    work = tmp_path_factory.mktemp("bundle")
    box = sandbox_factory("bundle", 1, image="server")
    deployment = Deployment(PRESET, "bookworm", make_profile(work, PRESET, box), box)
    run_deploy(deployment, work, label="first").require()
    guest = box.guests[0].name
    values = secret_values(deployment.profile_path)
    plant(deployment, guest, values)
    # A drift check now, so the host has a status file and the journal its lines.
    drift = ssh(box, guest, "systemctl", "start", deployment.plan.layout.drift_service,
                timeout=300)
    assert drift.returncode == 0, drift.stderr
    archive = work / "out" / "bundle.tar.gz"
    archive.parent.mkdir()
    env = {**os.environ, "SELFHOST_PASSPHRASE": PASSPHRASE}
    done = subprocess.run([SELFHOST, "support-bundle", str(deployment.profile_path),
                           "--sandbox", box.name, "--since", "2h", "--output", str(archive),
                           "--artifacts", str(work / "artifacts-first"), "--json"],
                          capture_output=True, text=True, env=env, timeout=900, check=False)
    extracted = work / "extracted"
    extracted.mkdir()
    if archive.exists():
        with tarfile.open(archive) as tar:
            tar.extractall(extracted, filter="data")
    roots = list(extracted.iterdir())
    return Bundled(deployment, guest, values, archive, extracted,
                   roots[0] if roots else extracted, done.returncode, done.stdout,
                   done.stderr)


def test_the_bundle_is_written_complete_and_private(bundled: Bundled) -> None:
    assert (bundled.rc, bundled.archive.exists()) == (0, True), bundled.stderr
    assert oct(bundled.archive.stat().st_mode & 0o777) == "0o600"


def test_no_secret_value_of_the_profile_in_any_encoding_is_in_the_bundle(
        bundled: Bundled) -> None:
    # The planted values really were where the bundle looks (else nothing is proven).
    notes = bundled.on_host("cat", NOTES)
    assert findings(notes, bundled.values), "the planting put no secret on the host"
    known = {**bundled.values, **FOREIGN}
    assert scan_tree(bundled.extracted, known) == []
    assert findings(bundled.stdout + bundled.stderr, known) == []


def test_the_listing_printed_before_writing_is_what_the_archive_holds(
        bundled: Bundled) -> None:
    manifest = json.loads(bundled.stdout)
    listed = {p["name"] for p in manifest["parts"]} | {"manifest.json"}
    held = {str(p.relative_to(bundled.root)) for p in bundled.root.rglob("*") if p.is_file()}
    assert held == listed
    masked = {p["name"]: p["masked"] for p in manifest["parts"]}
    notes = f"hosts/{bundled.deployment.plan.hosts[0].name}/files{NOTES}"
    assert {"database_password", "private key", "API key"} <= set(masked[notes])


def test_the_bundle_holds_ruleset_journal_verify_report_and_records(bundled: Bundled) -> None:
    host = bundled.deployment.plan.hosts[0].name
    base = f"hosts/{host}"
    # Counters move between the two reads (verify's probes are dropped packets).
    ruleset = COUNTERS.sub("counter", bundled.on_host("nft", "list", "ruleset"))
    assert "table inet" in ruleset
    assert COUNTERS.sub("counter", bundled.part(f"{base}/nft-ruleset.txt")) == ruleset
    journal = bundled.part(f"{base}/journal/tagged.log")
    assert f"{MARKER} start" in journal
    assert f"{MARKER} connecting with password=" in journal
    report = json.loads(bundled.part("controller/verify-report.json"))
    assert (report["hosts"], len(report["checks"]) > 10) == ([host], True)
    record = json.loads(bundled.part(f"{base}/files/etc/backend-chat/deployment.json"))
    assert record["host"] == host
    assert json.loads(bundled.part("controller/deployment.json"))["host"] is None
    kept = json.loads(bundled.part("controller/kept-runs.json"))
    assert [(r["status"], r["stats"][host]["failed"]) for r in kept] == [("successful", 0)]
    # The deploy's own history, kept without being asked
    runs = json.loads(bundled.part("controller/runs.json"))
    assert [(r["status"], r["rc"], r["check"], r["stats"][host]["failed"]) for r in runs] == [
        ("successful", 0, False, 0)]
    # The drift watch: its status file as the host holds it, its lines in the journal.
    layout = bundled.deployment.plan.layout
    status = json.loads(bundled.part(f"{base}/files{layout.drift_status}"))
    on_host = json.loads(bundled.on_host("cat", layout.drift_status))
    assert sorted(c["id"] for c in status["checks"]) == \
        sorted(c["id"] for c in on_host["checks"])
    assert len(status["checks"]) > 10
    assert any("backend-chat-drift:" in line and f"host={host}" in line
               for line in bundled.part(f"{base}/journal/units.log").splitlines())
    packages = bundled.part(f"{base}/packages.tsv")
    assert any(line.split("\t")[1] == "nginx" for line in packages.splitlines())
    verdicts = json.loads(bundled.part(f"{base}/proxy-verdicts.json"))
    refused = verdicts["destinations"]["unlisted.invalid:443"]
    assert (refused["listed"], refused["refused"] >= 1) == (False, True)


def test_secret_files_are_left_out_not_read(bundled: Bundled) -> None:
    plan = bundled.deployment.plan
    host = plan.hosts[0].name
    manifest = json.loads(bundled.stdout)
    env_part = f"hosts/{host}/files{plan.layout.app_env_file}"
    assert not (bundled.root / env_part).exists()
    assert manifest["omitted"][env_part] == "holds a secret"


def test_bad_since_and_an_existing_output_are_refused(bundled: Bundled, tmp_path: Path
                                                      ) -> None:
    env = {**os.environ, "SELFHOST_PASSPHRASE": PASSPHRASE}
    profile = str(bundled.deployment.profile_path)
    bad = subprocess.run([SELFHOST, "support-bundle", profile, "--since", "yesterdayish",
                          "--sandbox", bundled.deployment.box.name, "--output",
                          str(tmp_path / "b.tgz")],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert (bad.returncode, "--since 'yesterdayish'" in bad.stderr) == (2, True), bad.stderr
    existing = tmp_path / "exists.tgz"
    existing.write_text("keep me")
    started = time.monotonic()
    again = subprocess.run([SELFHOST, "support-bundle", profile, "--sandbox",
                            bundled.deployment.box.name, "--output", str(existing)],
                           capture_output=True, text=True, env=env, timeout=120, check=False)
    assert (again.returncode, existing.read_text()) == (2, "keep me"), again.stderr
    assert "the file exists" in again.stderr
    assert time.monotonic() - started < 60
    assert not (tmp_path / "b.tgz").exists()


def test_an_unreachable_host_leaves_the_bundle_written_but_incomplete(
        bundled: Bundled, tmp_path: Path) -> None:
    box = bundled.deployment.box
    host = bundled.deployment.plan.hosts[0].name
    # The guest's own connection, but a port nothing listens on.
    found = read_hosts(box.inventory)[box.guests[0].name]
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"hosts": {host: {**found, "ansible_port": 1}}}}))
    out = tmp_path / "partial.tar.gz"
    env = {**os.environ, "SELFHOST_PASSPHRASE": PASSPHRASE}
    done = subprocess.run([SELFHOST, "support-bundle", str(bundled.deployment.profile_path),
                           "--inventory", str(inventory), "--no-verify", "--output", str(out),
                           "--json"], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert done.returncode == 1, done.stderr
    manifest = json.loads(done.stdout)
    assert [p.split(":", 1)[0] for p in manifest["problems"]] == [host]
    assert "MISSING" in done.stderr
    with tarfile.open(out) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames()}
    assert {"manifest.json", "controller/deployment.json"} <= names
    assert not any(n.startswith("hosts/") for n in names)
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_a_dry_run_lists_the_parts_and_writes_nothing(bundled: Bundled, tmp_path: Path
                                                      ) -> None:
    env = {**os.environ, "SELFHOST_PASSPHRASE": PASSPHRASE}
    done = subprocess.run([SELFHOST, "support-bundle", str(bundled.deployment.profile_path),
                           "--sandbox", bundled.deployment.box.name, "--no-verify",
                           "--dry-run"], capture_output=True, text=True, env=env, timeout=300,
                          check=False, cwd=tmp_path)
    host = bundled.deployment.plan.hosts[0].name
    assert done.returncode == 0, done.stderr
    assert f"  hosts/{host}/nft-ruleset.txt  " in done.stdout
    assert f"left out: hosts/{host}/files/etc/backend-chat/app.env (holds a secret)" \
        in done.stdout
    assert list(tmp_path.iterdir()) == []
