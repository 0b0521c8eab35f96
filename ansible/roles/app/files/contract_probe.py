#!/usr/bin/python3
"""selfhost contract probe: stands in for backend.chat until a release is configured.

It honours the backend.chat application contract (wiring from the environment,
loopback listener behind nginx) and reports whether that wiring works. It is not
backend.chat and never claims to be.

  GET /          a page naming the probe
  GET /healthz   JSON report on database, cache, AI, email and monitoring wiring
                 (with --release-version and --schema-version: the release and the
                 schema it finds); 200 when database, cache and AI wiring (and the
                 schema) are fine, 503 otherwise
  GET /egress?host=H&port=P
                 asks the egress proxy to CONNECT H:P, sends no data, reports the
                 proxy's answer; loopback callers only, refused through nginx
  GET /ws        WebSocket echo, to test the upgrade path through nginx
  GET /client    JSON: the peer address and the forwarding headers as received,
                 so the proxy's rewriting of the client's address can be checked
  GET /canary    JSON: the canary rows in the app's database
  POST /canary?value=V
                 writes V (1-100 letters, digits, '.', '_', '-') as a canary row, then
                 answers as GET does; loopback callers only, for backup and
                 restore tests

Deploy it together with contract_probe_checks.py, in one directory.
``--check`` runs the checks once, prints the report, exits 0 (ok) or 1 (degraded).
No secret value is ever written to a response or a log line.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import html
import json
import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, BinaryIO, cast
from urllib.parse import parse_qs, urlsplit

# The checks module sits beside this script, which Python puts first on sys.path.
from contract_probe_checks import (
    APP_NAME,
    VERSION,
    Checker,
    Env,
    canary,
    probe_egress,
    run_checks,
    scrub,
    secret_values,
)

LISTEN_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
WS_IDLE_TIMEOUT = 300.0
WS_MAX_MESSAGE = 1 << 16
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# nginx adds one of these; their presence means the caller is not a local process.
FORWARDING_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")
# Validated before it goes into the CONNECT line, so no header can be injected.
CANARY_VALUE = re.compile(r"[A-Za-z0-9._-]{1,100}")
TARGET_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")


class WebSocketClose(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def _read_exact(rfile: BinaryIO, size: int) -> bytes:
    data = rfile.read(size)
    if len(data) < size:
        raise ConnectionError("peer closed the connection")
    return data


def _read_frame(rfile: BinaryIO) -> tuple[bool, int, bytes]:
    first, second = _read_exact(rfile, 2)
    if first & 0x70:
        raise WebSocketClose(1002, "reserved bits set")
    if not second & 0x80:
        raise WebSocketClose(1002, "client frames must be masked")
    size = second & 0x7F
    if size in (126, 127):
        size = int.from_bytes(_read_exact(rfile, 2 if size == 126 else 8), "big")
    if size > WS_MAX_MESSAGE:
        raise WebSocketClose(1009, "message too big")
    mask = _read_exact(rfile, 4)
    data = _read_exact(rfile, size)
    key = (mask * (size // 4 + 1))[:size]
    payload = (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")
    return bool(first & 0x80), first & 0x0F, payload


def _frame(opcode: int, payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        header = bytes([0x80 | opcode, size])
    elif size < 1 << 16:
        header = bytes([0x80 | opcode, 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 127]) + size.to_bytes(8, "big")
    return header + payload


def websocket_echo(rfile: BinaryIO, wfile: BinaryIO) -> None:
    """Echo text and binary messages (reassembling fragments); answer pings and close."""
    message, kind = bytearray(), 0
    try:
        while True:
            fin, opcode, payload = _read_frame(rfile)
            if opcode >= 8:
                if not fin or len(payload) > 125 or opcode > 10:
                    raise WebSocketClose(1002, "invalid control frame")
                if opcode == 8:
                    wfile.write(_frame(8, payload[:2]))
                    return
                if opcode == 9:
                    wfile.write(_frame(10, payload))
                continue
            if opcode in (1, 2) and not kind:
                kind = opcode
            elif opcode != 0 or not kind:
                raise WebSocketClose(1002, "unexpected frame")
            message += payload
            if len(message) > WS_MAX_MESSAGE:
                raise WebSocketClose(1009, "message too big")
            if fin:
                if kind == 1:
                    try:
                        bytes(message).decode("utf-8")
                    except UnicodeDecodeError:
                        raise WebSocketClose(1007, "text is not UTF-8") from None
                wfile.write(_frame(kind, bytes(message)))
                message, kind = bytearray(), 0
    except WebSocketClose as close:
        wfile.write(_frame(8, close.code.to_bytes(2, "big") + str(close).encode()))


def log(message: str) -> None:
    # stderr goes to journald; one line per event.
    sys.stderr.write(f"{message}\n")
    sys.stderr.flush()


class ProbeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], env: Env, release: str | None = None,
                 schema: int | None = None) -> None:
        super().__init__(address, ProbeHandler)
        self.env = env
        self.secrets = secret_values(env)
        self.checker = Checker(env, release, schema)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback whose message could quote a secret.
        exc = sys.exc_info()[1]
        log(scrub(f"error handling a request: {type(exc).__name__}: {exc}", self.secrets))


class ProbeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # a 101 upgrade needs HTTP/1.1
    server_version = f"selfhost-contract-probe/{VERSION}"
    sys_version = ""
    timeout = 30  # idle keep-alive connections must not hold threads forever

    @property
    def probe(self) -> ProbeServer:
        return cast(ProbeServer, self.server)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/healthz":
            healthy, report = self.probe.checker.report()
            self._json(200 if healthy else 503, report)
        elif path == "/egress":
            self._egress()
        elif path == "/ws":
            self._websocket()
        elif path == "/client":
            self._json(200, {"peer": self.client_address[0],
                             **{h: self.headers.get_all(h, []) for h in FORWARDING_HEADERS}})
        elif path == "/canary":
            self._canary(None)
        elif path == "/":
            self._send(200, INDEX.encode(), "text/html; charset=utf-8")
        else:
            self._json(404, {"detail": "not found"})

    def do_POST(self) -> None:
        # A request body is never read, so the connection cannot be reused.
        self.close_connection = True
        if urlsplit(self.path).path != "/canary":
            self._json(404, {"detail": "not found"})
            return
        value = parse_qs(urlsplit(self.path).query).get("value", [""])[0]
        if not CANARY_VALUE.fullmatch(value):
            self._json(400, {"detail": "expected ?value= of 1-100 letters, digits, . _ -"})
            return
        self._canary(value)

    def _local_caller(self) -> bool:
        forwarded = any(h in self.headers for h in FORWARDING_HEADERS)
        return self.client_address[0] == "127.0.0.1" and not forwarded

    def _canary(self, value: str | None) -> None:
        # Like /egress: a test hook on the database, never reachable through nginx.
        if not self._local_caller():
            self._json(403, {"detail": "/canary is for loopback callers, not through nginx"})
            return
        result = canary(self.probe.env, value)
        self._json(200 if result["ok"] else 503, scrub(result, self.probe.secrets))

    def _egress(self) -> None:
        # Only for local callers such as verify: nginx must not expose it, and a
        # forwarded request is refused even if it does.
        if not self._local_caller():
            self._json(403, {"detail": "/egress is for loopback callers, not through nginx"})
            return
        query = parse_qs(urlsplit(self.path).query)
        host, port = query.get("host", [""])[0], query.get("port", [""])[0]
        if not TARGET_HOST.fullmatch(host) or not port.isdigit() or not 0 < int(port) < 65536:
            self._json(400, {"detail": "expected ?host=NAME&port=1-65535"})
            return
        self._json(200, scrub(probe_egress(self.probe.env, host, int(port)), self.probe.secrets))

    def _websocket(self) -> None:
        key = self.headers.get("Sec-WebSocket-Key", "")
        tokens = {t.strip().lower() for t in self.headers.get("Connection", "").split(",")}
        try:
            key_ok = len(base64.b64decode(key, validate=True)) == 16
        except ValueError:
            key_ok = False
        if (self.headers.get("Upgrade", "").lower() != "websocket" or "upgrade" not in tokens
                or self.headers.get("Sec-WebSocket-Version") != "13" or not key_ok):
            self._json(400, {"detail": "expected a WebSocket (version 13) upgrade request"})
            return
        digest = hashlib.sha1((key + WS_GUID).encode(), usedforsecurity=False).digest()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", base64.b64encode(digest).decode())
        self.end_headers()
        self.close_connection = True
        self.connection.settimeout(WS_IDLE_TIMEOUT)
        # OSError: the peer went away or idled out; there is nothing left to answer.
        with contextlib.suppress(OSError):
            websocket_echo(cast(BinaryIO, self.rfile), cast(BinaryIO, self.wfile))

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data, indent=2).encode() + b"\n", "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Path only: a query string may carry anything, and the request line is
        # attacker-controlled, so control characters are masked.
        path = re.sub(r"[^\x21-\x7e]", "?", urlsplit(getattr(self, "path", "")).path)[:200]
        method = re.sub(r"[^A-Z]", "?", getattr(self, "command", None) or "-")[:10]
        line = f"{self.client_address[0]} {method} {path or '-'} {code}"
        log(scrub(line, self.probe.secrets))

    def log_error(self, format: str, *args: Any) -> None:
        # The default quotes the raw request line; log_request already records the status.
        pass


INDEX = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(APP_NAME)}</title></head>
<body><h1>{html.escape(APP_NAME)}</h1>
<p>This host runs the selfhost contract probe, not backend.chat. It checks the wiring
a backend.chat release will use (database, cache, AI provider, egress proxy) until
a release is deployed.</p>
<p><a href="/healthz">/healthz</a>: the wiring report.</p>
</body></html>
"""


def _notify_systemd(state: bytes) -> None:
    # Lets a Type=notify unit count as started only once the port is listening.
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state)
    except OSError as exc:
        log(f"could not notify systemd: {exc}")


def serve(env: Env, port: int, release: str | None = None, schema: int | None = None) -> int:
    try:
        server = ProbeServer((LISTEN_HOST, port), env, release, schema)
    except OSError as exc:
        log(f"{APP_NAME}: cannot listen on {LISTEN_HOST}:{port}: {exc.strerror}")
        return 2
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    # serve_forever runs in a thread because shutdown() must come from another one.
    worker = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    worker.start()
    log(f"{APP_NAME} {VERSION} listening on {LISTEN_HOST}:{port}")
    _notify_systemd(b"READY=1")
    stop.wait()
    log("stopping")
    _notify_systemd(b"STOPPING=1")
    server.shutdown()
    server.server_close()
    worker.join()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="contract_probe",
        description=f"{APP_NAME}: checks the backend.chat wiring from the environment. "
                    f"Listens on {LISTEN_HOST}:$LISTEN_PORT (default {DEFAULT_PORT}).")
    parser.add_argument("--check", action="store_true",
                        help="run the checks once, print the report, exit 0 if ok, 1 if not")
    parser.add_argument("--redis-ca", metavar="FILE", default="",
                        help="CA certificate of a TLS cache, unless REDIS_CA_FILE is set")
    parser.add_argument("--release-version", metavar="V",
                        help="the release this probe is deployed as (shown on /healthz)")
    parser.add_argument("--schema-version", type=int, metavar="N",
                        help="the database schema this release needs (decides health)")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.redis_ca:
        env.setdefault("REDIS_CA_FILE", args.redis_ca)
    if args.check:
        healthy, report = run_checks(env, args.release_version, args.schema_version)
        print(json.dumps(report, indent=2))
        return 0 if healthy else 1
    port = env.get("LISTEN_PORT", str(DEFAULT_PORT))
    if not port.isdigit() or not 0 < int(port) < 65536:
        log(f"{APP_NAME}: LISTEN_PORT must be a port number from 1 to 65535")
        return 2
    return serve(env, int(port), args.release_version, args.schema_version)


if __name__ == "__main__":
    sys.exit(main())
