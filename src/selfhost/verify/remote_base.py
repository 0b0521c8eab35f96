"""The head of the remote collector: helpers and the sections every host shares.

:mod:`selfhost.verify.collector` sends this file's source, followed by the
collection functions of each component on the host, to ``python3`` on the
host; :func:`main` runs every section the spec names and prints one JSON
object, so a host costs one round trip however many checks it has. Standard
library only: the hosts run Debian's python3. Component functions may use
everything defined here by name.

No secret leaves the host: the app environment is reported as key names plus
the values the spec names as public; credentials read to test the app's own
access (Redis) are used on the host and never printed.
"""

from __future__ import annotations

import base64
import grp
import json
import os
import pwd
import re
import socket
import ssl
import stat
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypedDict, cast

#: per connection made on the host (a refused or answered probe takes milliseconds)
TIMEOUT = 3.0


class RunResult(TypedDict):
    rc: int | None
    out: str
    err: str


class StatFacts(TypedDict, total=False):
    exists: bool
    error: str
    mode: str
    owner: str
    group: str
    dir: bool


def run_command(argv: list[str], timeout: float = 10.0) -> RunResult:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"rc": None, "out": "", "err": f"{type(exc).__name__}: {exc}"}
    return {"rc": done.returncode, "out": done.stdout, "err": done.stderr[-2000:]}


def stat_path(path: str) -> StatFacts:
    try:
        st = os.stat(path)
    except OSError as exc:
        return {"exists": False, "error": exc.strerror or str(exc)}
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return {"exists": True, "mode": f"{stat.S_IMODE(st.st_mode):04o}", "owner": owner,
            "group": group, "dir": stat.S_ISDIR(st.st_mode)}


def describe_stat(st: StatFacts) -> str:
    if not st.get("exists"):
        return f"missing ({st.get('error', 'not found')})"
    return f"mode {st.get('mode')}, owner {st.get('owner')}:{st.get('group')}"


def env_file(path: str) -> dict[str, str]:
    """A systemd EnvironmentFile as the app reads it."""
    env: dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for raw in handle:
            line = raw.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, value = line.split("=", 1)
            key = key.removeprefix("export ").strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            elif len(value) >= 2 and value[0] == value[-1] == "'":
                value = value[1:-1]
            env[key] = value
    return env


def tls_connect(addresses: list[str], ctx: ssl.SSLContext, sni: str, port: int = 443
                ) -> ssl.SSLSocket:
    """A TLS connection to the first of ``addresses`` that accepts TCP."""
    last: Exception | None = None
    for address in addresses:
        try:
            raw = socket.create_connection((address, port), timeout=TIMEOUT)
        except OSError as exc:
            last = exc
            continue
        return ctx.wrap_socket(raw, server_hostname=sni)
    raise last or OSError("no address to connect to")


def unverified_context() -> ssl.SSLContext:
    """A client that accepts any certificate: for probes about the protocol, not the peer."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# -- the shared sections: asked for by every component through its Fragment

def collect_files(paths: list[str]) -> dict[str, StatFacts]:
    return {p: stat_path(p) for p in paths}


def collect_units(spec: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for unit, props in spec.items():
        res = run_command(["systemctl", "show", unit, "--property=" + ",".join(props)])
        out[unit] = dict(line.split("=", 1) for line in res["out"].splitlines() if "=" in line)
    return out


def collect_processes(names: list[str]) -> dict[str, list[str]]:
    """Owners of the processes whose command line starts with each name."""
    out: dict[str, list[str]] = {n: [] for n in names}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmd = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
            uid = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            continue
        for name in names:
            if cmd.startswith(name) or cmd.split(" ")[0].endswith("/" + name):
                try:
                    out[name].append(pwd.getpwuid(uid).pw_name)
                except KeyError:
                    out[name].append(str(uid))
    return out


def _hex_address(text: str) -> str:
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    address = socket.inet_ntop(socket.AF_INET6, words)
    return address.removeprefix("::ffff:") if address.startswith("::ffff:") else address


def collect_listeners(_: object) -> list[tuple[str, int]]:
    """Listening TCP sockets as [address, port], read from /proc (no ss needed)."""
    found: set[tuple[str, int]] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] != "0A":
                continue
            address, port = fields[1].split(":")
            found.add((_hex_address(address), int(port, 16)))
    return sorted(found)


SHARED: dict[str, Callable[[Any], Any]] = {
    "files": collect_files, "units": collect_units, "processes": collect_processes,
    "listeners": collect_listeners,
}


def _guarded(section: Callable[[Any], Any], arg: Any) -> Any:
    try:
        return section(arg)
    except Exception as exc:  # one broken section must not hide the others
        return {"section_error": f"{type(exc).__name__}: {exc}"}


def main(sections: dict[str, Callable[[Any], Any]]) -> None:
    spec = cast(dict[str, object], json.loads(base64.b64decode(sys.argv[-1])))
    every = {**SHARED, **sections}
    names = [n for n in every if n in spec]
    # Sections are independent; the slow ones (a dropped connection waits for its
    # timeout) then overlap instead of adding up.
    with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        found = pool.map(lambda n: _guarded(every[n], spec[n]), names)
        facts = dict(zip(names, found, strict=True))
    sys.stdout.write(json.dumps(facts))
