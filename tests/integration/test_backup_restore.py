"""`selfhost backup`, `restore` and `backup drill` on real guests.

One Debian 12 guest is deployed once and a canary row written through the probe's
/canary endpoint; its backup is then restored onto a fresh Debian 13 guest (after
each bad archive was refused there with nothing deployed), and the drill restores
it onto a throwaway Debian 12 guest.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from selfhost import sandbox
from selfhost.deploy import DeployOptions
from selfhost.deploy import deploy as run_deploy
from selfhost.init import InitRequest, run_init

pytestmark = pytest.mark.slow

PASSPHRASE = "backup-integration-passphrase-" + secrets.token_urlsafe(8)
PRESET = "air-gapped"
CANARY = "canary-" + secrets.token_hex(8)
#: the customer's own vendor facts (the air-gapped preset has no AI vendor to describe)
OVERLAY = "schema_version: 1\nvendors: {}\n"
SandboxFactory = Callable[..., sandbox.Sandbox]


def selfhost(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SELFHOST_PASSPHRASE": PASSPHRASE}
    return subprocess.run([sys.executable, "-m", "selfhost.cli.app", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def on_guest(box: sandbox.Sandbox, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(box.ssh_command(box.guests[0], "bash", "-c", script),
                          capture_output=True, text=True, timeout=120, check=False)


def canary(box: sandbox.Sandbox, value: str | None = None) -> list[str]:
    """The canary rows, as the probe on the guest reads them (after writing ``value``)."""
    query = f"?value={value}" if value else ""
    method = "POST" if value else "GET"
    code = ("import json,urllib.request;r=urllib.request.Request("
            f"'http://127.0.0.1:8000/canary{query}',method='{method}');"
            "print(urllib.request.urlopen(r,timeout=20).read().decode())")
    done = on_guest(box, f"python3 -c \"{code}\"")
    assert done.returncode == 0, done.stderr
    return [row["value"] for row in json.loads(done.stdout)["rows"]]


def init_profile(path: Path, *sets: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    run_init(InitRequest(output=path, preset=PRESET, sets=sets, force=True,
                         passphrase=PASSPHRASE, environ={}), None, None)
    return path


@dataclass
class Source:
    profile: Path
    box: sandbox.Sandbox
    archive: Path
    fresh: sandbox.Sandbox
    #: the fresh guest as it was before any restore reached it
    pristine: str


@pytest.fixture(scope="module")
def source(sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
           ) -> Source:
    tmp = tmp_path_factory.mktemp("backup")
    box = sandbox_factory("bk-src", hosts=1, release="bookworm", image="server")
    # A file the profile names beside it: the drill's unpacked profile needs it too.
    (tmp / "site" / "lists").mkdir(parents=True)
    (tmp / "site" / "lists" / "overlay.yaml").write_text(OVERLAY)
    profile = init_profile(tmp / "site" / "acme.yaml", "catalog_overlay=lists/overlay.yaml")
    run_deploy(profile, DeployOptions(sandbox=box.name, yes=True, passphrase=PASSPHRASE))
    assert canary(box, CANARY) == [CANARY]
    made = selfhost("backup", str(profile), "--sandbox", box.name, "--json")
    assert made.returncode == 0, made.stderr
    archive = Path(json.loads(made.stdout)["path"])
    fresh = sandbox_factory("bk-new", hosts=1, release="trixie", image="server")
    return Source(profile=profile, box=box, archive=archive, fresh=fresh,
                  pristine=_host_state(fresh))


def test_archive_is_private_and_holds_no_plaintext(source: Source) -> None:
    assert source.archive.stat().st_mode & 0o777 == 0o600
    data = source.archive.read_bytes()
    # The canary travels inside the dump; encrypted, it must not show.
    assert CANARY.encode() not in data
    assert b"PGDMP" not in data  # pg_dump's custom-format magic


def test_list_shows_the_archive_and_the_daily_dump(source: Source) -> None:
    ran = on_guest(source.box, "systemctl start backend-chat-backup.service")
    assert ran.returncode == 0, ran.stderr
    listed = selfhost("backup", "list", str(source.profile), "--sandbox", source.box.name,
                      "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    kinds = {row["kind"]: row for row in rows}
    assert kinds["archive"]["location"] == str(source.archive)
    assert kinds["daily"]["location"].startswith("chat1:/var/backups/backend-chat/backendchat-")
    assert kinds["daily"]["bytes"] > 0


#: what a deploy's first steps change on a host: packages, users, /etc, units, nft tables
#: (the fresh guest is the server image: its packages are there before any deploy)
HOST_STATE = ("dpkg-query -W -f '${Package} ${Status}\\n'; getent passwd | cut -d: -f1;"
              " ls -A /etc; systemctl list-unit-files --no-legend | cut -d' ' -f1;"
              " nft list tables; test ! -e /etc/backend-chat")


def _host_state(box: sandbox.Sandbox) -> str:
    done = on_guest(box, HOST_STATE)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _nothing_deployed(source: Source) -> None:
    assert _host_state(source.fresh) == source.pristine, \
        "the refused restore touched the fresh guest"


def _truncated(src: Path, dst: Path, _tmp: Path) -> Path:
    dst.write_bytes(src.read_bytes()[:-200])
    return dst


def _tampered(src: Path, dst: Path, _tmp: Path) -> Path:
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0x01
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize(("case", "code", "message"), [
    ("truncated", 2, "truncated"),
    ("tampered", 2, "fails authentication"),
    ("wrong-key", 5, "does not open this backup"),
    ("other-customer", 2, "is a backup of customer 'example-air-gapped'"),
])
def test_bad_archive_is_refused_before_anything_changes(
        source: Source, tmp_path: Path, case: str, code: int, message: str) -> None:
    profile, archive = source.profile, source.archive
    if case == "truncated":
        archive = _truncated(archive, tmp_path / "cut.shbackup", tmp_path)
    elif case == "tampered":
        archive = _tampered(archive, tmp_path / "bad.shbackup", tmp_path)
    elif case == "wrong-key":
        # Same customer, secrets made anew: another backup key.
        profile = init_profile(tmp_path / "acme.yaml")
    else:
        profile = init_profile(tmp_path / "other.yaml", "customer.id=other-customer")
    done = selfhost("restore", str(profile), "--backup", str(archive),
                    "--sandbox", source.fresh.name)
    assert done.returncode == code, done.stdout + done.stderr
    assert message in done.stderr
    assert "nothing was changed" in done.stderr
    assert "Traceback" not in done.stderr
    _nothing_deployed(source)


def test_restore_onto_a_fresh_debian_13_guest(source: Source) -> None:
    done = selfhost("restore", str(source.profile), "--backup", str(source.archive),
                    "--sandbox", source.fresh.name, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"Restored {source.archive}" in done.stdout
    assert canary(source.fresh) == [CANARY]
    release = on_guest(source.fresh, ". /etc/os-release; echo $VERSION_CODENAME")
    assert release.stdout.strip() == "trixie"


def test_drill_restores_onto_a_throwaway_guest_and_removes_it(source: Source) -> None:
    done = selfhost("backup", "drill", str(source.profile), "--release", "bookworm",
                    "--json", timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["backup"] == str(source.archive)
    assert report["canary"] == [CANARY]
    assert report["failed"] == 0
    assert report["checks"] > 0
    assert report["age_seconds"] > 0
    assert report["seconds"] > 0
    names = {box.name for box in sandbox.list_sandboxes()}
    assert not any(name.startswith("drill-") for name in names)
