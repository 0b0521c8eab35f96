"""Where a deployment's secrets are on its guests: every file of the root filesystem
(walked from this machine), the guest's in-memory file systems and its journal.

The oracle is independent of the product's redactor: the profile's real secret
values (from its decrypted secrets file, the third-party credentials the test
supplied, the passphrase, the TLS host keys) and their common encodings, searched
for by GNU grep (fixed strings) and plain substring search. Only the files that
must hold a secret may, each with the owner and the mode that keep it private.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import os
import stat
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from selfhost import sandbox as sandbox_mod
from selfhost.sandbox.guest import rootfs_dir

#: shortest value searched for: anything shorter is not a generated secret
MIN_LENGTH = 12


@dataclass(frozen=True)
class Allowed:
    """A file on a guest that must hold a secret, why, and which secrets."""

    #: the path on the guest (a glob)
    path: str
    why: str
    #: the secrets it may hold (globs of their names)
    secrets: tuple[str, ...]


#: Each is mode 0600 (checked); nothing else may hold any secret. PostgreSQL and
#: Redis keep no password of their own on disk (SCRAM verifiers and ACL hashes only).
ALLOWED = (
    Allowed("/etc/backend-chat/app.env", "the app's wiring: database and cache passwords, "
            "its secret key, a chosen provider's credentials",
            ("app_secret_key", "database_password", "cache_password", "supplied *")),
    Allowed("/etc/backend-chat/tls/server.key", "the host's TLS private key, as handed "
            "over (the services' copies below are made from it)", ("tls_key_*",)),
    Allowed("/etc/nginx/tls/server.key", "nginx's copy of the host's TLS key",
            ("tls_key_*",)),
    Allowed("/etc/postgresql/*/main/tls/server.key", "PostgreSQL's copy of the host's TLS "
            "key (between hosts)", ("tls_key_*",)),
    Allowed("/etc/redis/tls/server.key", "Redis's copy of the host's TLS key (between "
            "hosts)", ("tls_key_*",)),
    Allowed("/etc/backend-chat/backup.key", "the key the backups are encrypted with",
            ("backup_key",)),
)
#: the only mode an allowed file may have
PRIVATE = 0o600


def encodings(value: str) -> set[str]:
    """The value as written and as commonly encoded (base64, URL-safe base64, hex,
    percent-encoding, JSON string escaping); a PEM key also by each long body line."""
    raw = value.encode()
    found = {value, base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(),
             raw.hex(), quote(value, safe=""), json.dumps(value)[1:-1]}
    found |= {v.rstrip("=") for v in found}
    found |= {line for line in value.splitlines() if not line.startswith("-----")}
    return {v for v in found if len(v) >= MIN_LENGTH and "\n" not in v}


def needles(values: dict[str, str]) -> dict[str, str]:
    """Every searched-for string and the name of the secret it gives away."""
    return {encoded: name for name, value in values.items() for encoded in encodings(value)}


def _grep(argv: list[str], patterns: dict[str, str]) -> list[str]:
    """Files grep finds holding any pattern (passed on stdin, never as arguments)."""
    done = subprocess.run(["grep", "-rlaF", "--null", "-f", "/dev/stdin",
                           *argv], input="\n".join(patterns) + "\n", capture_output=True,
                          text=True, timeout=900, check=False)
    # 1: nothing found; 2: an error, such as a socket or a file gone while walking
    assert done.returncode in (0, 1) or done.stdout, done.stderr[-2000:]
    return [p for p in done.stdout.split("\0") if p]


def _allowed(path: PurePosixPath) -> Allowed | None:
    return next((a for a in ALLOWED if fnmatch.fnmatchcase(str(path), a.path)), None)


def _which(data: bytes, patterns: dict[str, str]) -> list[str]:
    return sorted({name for needle, name in patterns.items() if needle.encode() in data})


def disk_hits(guest: sandbox_mod.Guest, values: dict[str, str]) -> list[str]:
    """Every file of the guest's root filesystem (seen from this machine) holding a
    secret where it must not, or an allowed one open to more than it should be."""
    patterns = needles(values)
    root = rootfs_dir(guest.directory)
    assert (root / "etc" / "os-release").exists(), f"{root} is not the guest's root"
    out = []
    for found in _grep(["--devices=skip", str(root)], patterns):
        path = Path(found)
        inside = PurePosixPath("/") / path.relative_to(root)
        allowed = _allowed(inside)
        names = _which(path.read_bytes(), patterns)
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        stray = [n for n in names if allowed is None
                 or not any(fnmatch.fnmatchcase(n, g) for g in allowed.secrets)]
        if stray:
            out.append(f"{inside}: {', '.join(stray)}")
        elif allowed is not None and mode != PRIVATE:
            out.append(f"{inside}: {', '.join(names)} in a file of mode {mode:04o} (it "
                       f"holds {allowed.why}: {PRIVATE:04o} only)")
    return out


#: the guest's in-memory file systems, which a walk of its directory cannot see
VOLATILE = ("/run", "/tmp", "/dev/shm")


def volatile_hits(box: sandbox_mod.Sandbox, guest: sandbox_mod.Guest,
                  values: dict[str, str]) -> list[str]:
    """Secrets in the guest's in-memory file systems, read here from a tar stream (the
    secrets searched for never travel to the guest)."""
    patterns = needles(values)
    command = box.ssh_command(guest.name, "tar", "--ignore-failed-read", "-cf", "-", "-C",
                              "/", *(d.lstrip("/") for d in VOLATILE))
    out = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as tar:
        assert tar.stdout is not None
        with tarfile.open(fileobj=tar.stdout, mode="r|") as stream:
            for member in stream:
                handle = stream.extractfile(member) if member.isfile() else None
                if handle is not None and (names := _which(handle.read(), patterns)):
                    out.append(f"/{member.name}: {', '.join(names)}")
    return out


def journal_hits(box: sandbox_mod.Sandbox, guest: sandbox_mod.Guest,
                 values: dict[str, str]) -> list[str]:
    """Secrets in the guest's journal, every field of every entry since boot."""
    done = subprocess.run(box.ssh_command(guest.name, "journalctl", "--no-pager", "-o",
                                          "export", "--boot"),
                          capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    # An empty journal would hide nothing: the deploy's own units log there.
    assert done.stdout, "the guest's journal is empty"
    return [f"journal: {name}" for name in _which(done.stdout, needles(values))]
