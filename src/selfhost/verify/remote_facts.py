"""Collect one host's facts in a single run; executed ON the host by ``python3``.

verify sends this file's source with a JSON spec (what to look at, all from the
Plan) and gets one JSON object back, so a host costs one round trip however
many checks it has. Standard library only: the hosts run Debian's python3.

No secret leaves the host: the app environment is reported as key names plus
the values the spec names as public; credentials read here to test the app's
own access (Redis) are used on the host and never printed.
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
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, unquote, urlsplit

TIMEOUT = 3.0
#: a dropped SYN is never answered; a reachable neighbour answers in milliseconds
DIRECT_TIMEOUT = 2
LOG_TAIL_BYTES = 4 << 20


def _run(argv: list[str], timeout: float = 10.0) -> dict[str, Any]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"rc": None, "out": "", "err": f"{type(exc).__name__}: {exc}"}
    return {"rc": done.returncode, "out": done.stdout, "err": done.stderr[-2000:]}


def _stat(path: str) -> dict[str, Any]:
    try:
        st = os.stat(path)
    except OSError as exc:
        return {"exists": False, "error": exc.strerror}
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


def files(paths: list[str]) -> dict[str, Any]:
    return {p: _stat(p) for p in paths}


def sysctl(keys: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in keys:
        try:
            with open("/proc/sys/" + key.replace(".", "/"), encoding="ascii") as handle:
                out[key] = " ".join(handle.read().split())
        except OSError as exc:
            out[key] = f"unreadable: {exc.strerror}"
    return out


def container(_: Any) -> bool:
    return bool(_run(["systemd-detect-virt", "--container", "--quiet"])["rc"] == 0)


def _hex_address(text: str) -> str:
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    address = socket.inet_ntop(socket.AF_INET6, words)
    return address.removeprefix("::ffff:") if address.startswith("::ffff:") else address


def listeners(_: Any) -> list[list[Any]]:
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
    return [list(item) for item in sorted(found)]


def record(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return {"exists": True, "data": json.load(handle), "stat": _stat(path)}
    except FileNotFoundError:
        return {"exists": False}
    except (OSError, ValueError) as exc:
        return {"exists": True, "error": str(exc)}


def units(spec: dict[str, list[str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for unit, props in spec.items():
        res = _run(["systemctl", "show", unit, "--property=" + ",".join(props)])
        values = dict(line.split("=", 1) for line in res["out"].splitlines() if "=" in line)
        out[unit] = values
    return out


def processes(names: list[str]) -> dict[str, list[str]]:
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


def nftables(_: Any) -> dict[str, Any]:
    res = _run(["nft", "-j", "list", "ruleset"])
    if res["rc"] != 0:
        return {"error": res["err"].strip() or "nft failed"}
    items = json.loads(res["out"]).get("nftables", [])
    chains = [i["chain"] for i in items if "chain" in i]
    rules = [json.dumps(i["rule"].get("expr", [])) for i in items if "rule" in i]
    outputs = {(c["family"], c["table"], c["name"]) for c in chains if c.get("hook") == "output"}
    # Each output-hook chain's rules in evaluation order (the order nft lists them).
    output_rules: dict[str, list[Any]] = {f"{f} {t}/{n}": [] for f, t, n in sorted(outputs)}
    # Every chain's rules, so a chain an output rule jumps to can be read as well.
    chain_rules: dict[str, list[Any]] = {}
    for item in items:
        rule = item.get("rule")
        if not rule:
            continue
        key = f"{rule.get('family')} {rule.get('table')}/{rule.get('chain')}"
        chain_rules.setdefault(key, []).append(rule.get("expr", []))
        if (rule.get("family"), rule.get("table"), rule.get("chain")) in outputs:
            output_rules[key].append(rule.get("expr", []))
    return {"chains": [{k: c.get(k) for k in ("family", "table", "name", "hook", "policy")}
                       for c in chains],
            "skuid_rules": [r for r in rules if '"skuid"' in r],
            "output_rules": output_rules, "chain_rules": chain_rules}


def _psql(sql: str) -> Any:
    res = _run(["runuser", "-u", "postgres", "--", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1",
                "-d", "postgres", "-c", sql])
    if res["rc"] != 0:
        raise RuntimeError((res["err"] or "psql failed").strip())
    return json.loads(res["out"])


def postgresql(_: Any) -> dict[str, Any]:
    settings = _psql(
        "SELECT json_object_agg(name, setting) FROM pg_settings WHERE name IN "
        "('password_encryption','ssl','log_connections','log_disconnections',"
        "'listen_addresses','port','data_directory','hba_file','ssl_key_file')")
    # Only the kind of each secret leaves the host, never the secret itself.
    roles = _psql(
        "SELECT coalesce(json_agg(json_build_object('name', rolname, 'secret', CASE "
        "WHEN rolpassword IS NULL THEN 'none' WHEN rolpassword LIKE 'SCRAM-SHA-256$%' "
        "THEN 'scram-sha-256' WHEN rolpassword LIKE 'md5%' THEN 'md5' ELSE 'other' END)), "
        "'[]') FROM pg_authid WHERE rolcanlogin")
    hba = _psql(
        "SELECT coalesce(json_agg(json_build_object('line', line_number, 'type', type, "
        "'database', database, 'user', user_name, 'address', address, 'netmask', netmask, "
        "'method', auth_method, 'error', error) ORDER BY line_number), '[]') "
        "FROM pg_hba_file_rules")
    return {"settings": settings, "roles": roles, "hba": hba,
            "data_directory": _stat(settings.get("data_directory", "")),
            "ssl_key": _stat(settings.get("ssl_key_file", ""))}


def _redis_conf(path: str, seen: set[str]) -> dict[str, list[str]]:
    """The directives verify reads, following includes; others (passwords) are skipped."""
    wanted = {"bind", "port", "tls-port", "protected-mode", "include", "aclfile", "user"}
    out: dict[str, list[str]] = {}
    if path in seen:
        return out
    seen.add(path)
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            words = line.split()
            if not words or words[0].startswith("#") or words[0].lower() not in wanted:
                continue
            key = words[0].lower()
            if key == "user":  # ACL lines carry password hashes: keep the name only
                out.setdefault("user", []).append(words[1] if len(words) > 1 else "")
            elif key == "include":
                for sub, values in _redis_conf(words[1], seen).items():
                    out.setdefault(sub, []).extend(values)
            else:
                out.setdefault(key, []).append(" ".join(words[1:]))
    return out


def _redis_exchange(address: str, port: int, use_tls: bool, ca: str,
                    commands: list[list[str]]) -> list[str]:
    """Send RESP commands, return the first line of each reply."""
    raw = socket.create_connection((address, port), timeout=TIMEOUT)
    sock: socket.socket = raw
    if use_tls:
        ctx = ssl.create_default_context(cafile=ca)
        ctx.check_hostname = False  # the address is what the Plan names; the CA is pinned
        sock = ctx.wrap_socket(raw)
    replies = []
    with sock:
        reader = sock.makefile("rb")
        for cmd in commands:
            payload = f"*{len(cmd)}\r\n" + "".join(
                f"${len(p.encode())}\r\n{p}\r\n" for p in cmd)
            sock.sendall(payload.encode())
            replies.append(reader.readline().decode(errors="replace").strip()[:200])
    return replies


def redis_server(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"conf_stat": _stat(spec["conf"])}
    try:
        out["conf"] = _redis_conf(spec["conf"], set())
    except OSError as exc:
        out["conf_error"] = str(exc)
    try:
        out["ping"] = _redis_exchange(spec["address"], spec["port"], spec["tls"], spec["ca"],
                                      [["PING"]])[0]
    except (OSError, ssl.SSLError) as exc:
        out["ping_error"] = f"{type(exc).__name__}: {exc}"
    return out


def _env_file(path: str) -> dict[str, str]:
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


def redis_app(spec: dict[str, Any]) -> dict[str, Any]:
    """Authenticate as the app does (its own URL) and ask for CONFIG."""
    url = urlsplit(_env_file(spec["env_file"]).get("REDIS_URL", ""))
    if not url.hostname:
        return {"error": "REDIS_URL is not set in the environment file"}
    auth = ["AUTH", unquote(url.username or "default"), unquote(url.password or "")]
    try:
        replies = _redis_exchange(url.hostname, url.port or 6379, url.scheme == "rediss",
                                  spec["ca"], [auth, ["CONFIG", "GET", "maxmemory"]])
    except (OSError, ssl.SSLError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"auth": replies[0], "config": replies[1], "user": url.username}


def _tls_connect(addresses: list[str], ctx: ssl.SSLContext, sni: str) -> Any:
    last: Exception | None = None
    for address in addresses:
        try:
            raw = socket.create_connection((address, 443), timeout=TIMEOUT)
        except OSError as exc:
            last = exc
            continue
        return ctx.wrap_socket(raw, server_hostname=sni)
    raise last or OSError("no address to connect to")


def _handshake(addresses: list[str], version: ssl.TLSVersion, sni: str) -> dict[str, Any]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    try:
        with _tls_connect(addresses, ctx, sni) as sock:
            return {"ok": True, "version": sock.version()}
    except (OSError, ssl.SSLError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _https(addresses: list[str], ctx: ssl.SSLContext, sni: str, host: str) -> dict[str, Any]:
    try:
        with _tls_connect(addresses, ctx, sni) as sock:
            cert = sock.getpeercert()
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                         .encode())
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except (OSError, ssl.SSLError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")
    headers: dict[str, str] = {}
    for line in head[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    not_after = cert.get("notAfter") if cert else None
    return {"status": head[0] if head and head[0] else None, "headers": headers,
            "not_after": not_after,
            "days_left": (ssl.cert_time_to_seconds(not_after) - time.time()) / 86400
            if not_after else None}


def _http_plain(address: str, host: str) -> dict[str, Any]:
    try:
        with socket.create_connection((address, 80), timeout=TIMEOUT) as sock:
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                         .encode())
            line = sock.makefile("rb").readline().decode(errors="replace").strip()
    except OSError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"status": line or None}


def nginx(spec: dict[str, Any]) -> dict[str, Any]:
    addresses, domain = spec["addresses"], spec["domain"]
    test = _run(["nginx", "-t"])
    verify = ssl.create_default_context()
    if os.path.exists(spec["ca"]):
        verify.load_verify_locations(cafile=spec["ca"])
    unknown = spec["unknown_host"]
    lax = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    lax.check_hostname = False
    lax.verify_mode = ssl.CERT_NONE
    return {
        "test": {"rc": test["rc"], "output": test["err"].strip()[-1000:]},
        "tls13": _handshake(addresses, ssl.TLSVersion.TLSv1_3, domain),
        "tls12": _handshake(addresses, ssl.TLSVersion.TLSv1_2, domain),
        "verified": _https(addresses, verify, domain, domain),
        "unknown_https": _https(addresses, lax, unknown, unknown),
        "unknown_http": _http_plain(addresses[0], unknown),
    }


def app(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        env = _env_file(spec["env_file"])
    except OSError as exc:
        out["env_error"] = str(exc)
        env = {}
    public = set(spec["public"])
    out["env"] = {k: (v if k in public else None) for k, v in env.items()}
    out["url_hosts"] = {k: _url_without_password(env[k]) for k in spec["url_keys"] if k in env}
    if not spec.get("healthz", True):
        return out
    try:
        with urllib.request.urlopen(
                f"http://127.0.0.1:{spec['port']}/healthz", timeout=10) as resp:
            out["healthz"] = {"status": resp.status, "body": json.load(resp)}
    except urllib.error.HTTPError as exc:
        out["healthz"] = {"status": exc.code, "body": _json_or_none(exc.read())}
    except (OSError, ValueError) as exc:
        out["healthz"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def _json_or_none(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _url_without_password(url: str) -> str:
    """The URL with its password removed, from the user part and from the query
    (libpq also takes ``password=`` there)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if parts.username is not None:
        netloc = f"{parts.username}@{netloc}"
    query = "&".join(p for p in parts.query.split("&")
                     if p.split("=", 1)[0].lower() not in ("password", "sslpassword"))
    return parts._replace(netloc=netloc, query=query).geturl()


def _connect_status(proxy_port: int, target: str) -> dict[str, Any]:
    try:
        with socket.create_connection(("127.0.0.1", proxy_port), timeout=TIMEOUT) as sock:
            sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            line = sock.makefile("rb").readline().decode(errors="replace")
    except OSError as exc:
        return {"allowed": None, "detail": f"proxy not reachable: {exc}"}
    words = line.split()
    status = int(words[1]) if len(words) > 1 and words[1].isdigit() else None
    allowed = None if status is None else status not in (403, 407)
    return {"allowed": allowed, "proxy_status": status, "detail": line.strip()}


def _refusal(spec: dict[str, Any], target: str) -> dict[str, Any]:
    """The proxy's verdict on ``target``: through the app's /egress when it is the
    contract probe (the app's own path), else by a CONNECT of our own."""
    host, port = target.rsplit(":", 1)
    if not spec["probe_app"]:
        return _connect_status(spec["proxy_port"], target)
    url = f"http://127.0.0.1:{spec['app_port']}/egress?host={quote(host)}&port={port}"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return dict(json.load(resp))
    except (OSError, ValueError) as exc:
        return {"allowed": None, "detail": str(exc)}


def egress(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"refusals": {}}
    try:
        with open(spec["allowlist_file"], encoding="utf-8") as handle:
            out["allowlist_lines"] = [ln.strip() for ln in handle
                                      if ln.strip() and not ln.lstrip().startswith("#")]
    except OSError as exc:
        out["allowlist_error"] = str(exc)
    # In parallel: a refusal is instant, but a broken proxy costs a timeout each.
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = pool.map(lambda t: _refusal(spec, t), spec["destinations"])
        out["refusals"] = dict(zip(spec["destinations"], answers, strict=True))
    if spec.get("direct"):
        ip, port = spec["direct"].rsplit(":", 1)
        probe = ["timeout", str(DIRECT_TIMEOUT), "bash", "-c", f"</dev/tcp/{ip}/{port}"]
        with ThreadPoolExecutor(max_workers=2) as pool:
            user_run = pool.submit(_run, ["runuser", "-u", spec["user"], "--", *probe], 8)
            root_run = pool.submit(_run, probe, 8)
            as_user, as_root = user_run.result(), root_run.result()
        out["direct"] = {"user_rc": as_user["rc"], "user_err": as_user["err"].strip(),
                         "root_rc": as_root["rc"], "root_err": as_root["err"].strip()}
    out["log"] = _log_tail(spec["log_file"])
    return out


def _log_tail(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            data = handle.read()
    except FileNotFoundError:
        return {"exists": False, "lines": []}
    except OSError as exc:
        return {"exists": True, "error": str(exc), "lines": []}
    lines = data.decode(errors="replace").splitlines()
    if size > LOG_TAIL_BYTES:
        lines = lines[1:]  # the first line may be cut
    return {"exists": True, "lines": lines, "truncated": size > LOG_TAIL_BYTES}


SECTIONS: dict[str, Callable[[Any], Any]] = {
    "files": files, "sysctl": sysctl, "container": container, "listeners": listeners,
    "record": record,
    "units": units, "processes": processes, "nftables": nftables,
    "postgresql": postgresql, "redis_server": redis_server, "redis_app": redis_app,
    "nginx": nginx, "app": app, "egress": egress,
}


def _guarded(section: Callable[[Any], Any], arg: Any) -> Any:
    try:
        return section(arg)
    except Exception as exc:  # one broken section must not hide the others
        return {"section_error": f"{type(exc).__name__}: {exc}"}


def main() -> None:
    spec = json.loads(base64.b64decode(sys.argv[-1]))
    names = [n for n in SECTIONS if n in spec]
    # Sections are independent; the slow ones (a dropped connection waits for its
    # timeout) then overlap instead of adding up.
    with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        found = pool.map(lambda n: _guarded(SECTIONS[n], spec[n]), names)
        facts = dict(zip(names, found, strict=True))
    sys.stdout.write(json.dumps(facts))


if __name__ == "__main__":
    main()
