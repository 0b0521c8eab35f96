"""The host side of a support bundle: what one host contributes, as one JSON object.

:mod:`selfhost.bundle.collect` sends this file's source to ``python3`` on the
host on standard input, followed by ``main(SPEC)``; one round trip per host.
Standard library only (the hosts run Debian's python3), and nothing but
reading: journal, files, package database, ruleset, proxy log.

Everything read here travels to the controller unredacted (over ssh, never to
a file) because only the controller knows the secret values to hide; the
controller redacts each part before it enters the archive. The files the spec
names as secret are never read at all.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from typing import Any

#: a part larger than this is cut (the newest end kept): a bundle is read by people
PART_LIMIT = 16 * 1024 * 1024
TIMEOUT = 120.0


def _cut(text: str) -> str:
    if len(text) <= PART_LIMIT:
        return text
    return f"[first {len(text) - PART_LIMIT} characters cut]\n" + text[-PART_LIMIT:]


def _run(argv: list[str]) -> dict[str, Any]:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"rc": None, "out": "", "err": f"{type(exc).__name__}: {exc}"}
    return {"rc": done.returncode, "out": _cut(done.stdout.decode("utf-8", "replace")),
            "err": done.stderr.decode("utf-8", "replace")[-2000:]}


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(PART_LIMIT + 1)
    except OSError as exc:
        return {"error": exc.strerror or str(exc)}
    if b"\0" in raw[:8192]:
        return {"error": "binary file, not included"}
    return {"text": _cut(raw.decode("utf-8", "replace"))}


def _files(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every file the spec names, below its directories and matching its globs,
    except the secret ones (never opened)."""
    secret = set(spec["secret_files"])
    found: list[str] = list(spec["files"])
    for top in spec["dirs"]:
        for base, dirs, names in os.walk(top):
            dirs.sort()
            found += [os.path.join(base, n) for n in sorted(names)]
    for pattern in spec["globs"]:
        found += sorted(glob.glob(pattern))
    out: dict[str, dict[str, Any]] = {}
    for path in dict.fromkeys(found):
        if not os.path.lexists(path) or os.path.isdir(path):
            continue
        if path in secret or path.endswith(".key"):
            out[path] = {"omitted": "holds a secret"}
        else:
            out[path] = _read(path)
    return out


def _proxy_lines(path: str, since: float) -> list[str]:
    """The proxy's log lines at or after ``since`` (the first field is the time)."""
    lines: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                head = line.split(None, 1)[:1]
                try:
                    if head and float(head[0]) >= since:
                        lines.append(line.rstrip("\n"))
                except ValueError:
                    continue
    except OSError:
        return []
    return lines[-200_000:]


def main(spec: dict[str, Any]) -> None:
    since = f"@{int(spec['since'])}"
    journal = ["journalctl", "--no-pager", "-o", "short-iso-precise", "--since", since]
    units = [a for u in spec["units"] for a in ("-u", u)]
    tags = [a for t in spec["tags"] for a in ("-t", t)]
    result = {
        "journal_units": _run([*journal, *units]) if units else None,
        "journal_tags": _run([*journal, *tags]) if tags else None,
        "unit_states": _run(["systemctl", "--no-pager", "list-units", "--all", *spec["units"]]),
        "files": _files(spec),
        "packages": _run(["dpkg-query", "-W", "-f",
                          "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n"]),
        "os_release": _read("/etc/os-release"),
        "nft": _run(["nft", "list", "ruleset"]),
        "current_release": os.path.realpath(spec["current_release"])
        if os.path.lexists(spec["current_release"]) else None,
        "proxy_lines": _proxy_lines(spec["proxy_log"], float(spec["since"]))
        if spec["proxy_log"] else None,
    }
    json.dump(result, sys.stdout)
