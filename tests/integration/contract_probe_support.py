"""Throwaway servers, the probe process, a CONNECT proxy and a WebSocket client
for test_contract_probe.py. Everything listens on loopback only."""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest

FILES = Path(__file__).resolve().parents[2] / "ansible" / "roles" / "app" / "files"
PROBE = FILES / "contract_probe.py"
SYSTEM_PYTHON = "/usr/bin/python3"
APT_FIX = "apt-get install -y postgresql redis-server python3-psycopg2 python3-redis openssl"

DB_PASSWORD = "pgpw" + secrets.token_hex(12)
WRONG_PASSWORD = "wrongpw" + secrets.token_hex(12)
REDIS_PASSWORD = "rdpw" + secrets.token_hex(12)
OPENAI_KEY = "sk-test" + secrets.token_hex(16)
ANTHROPIC_KEY = "sk-ant-test" + secrets.token_hex(16)
SECRET_KEY = secrets.token_hex(24)
SECRETS = (DB_PASSWORD, WRONG_PASSWORD, REDIS_PASSWORD, OPENAI_KEY, ANTHROPIC_KEY, SECRET_KEY)


def probe_env(env: dict[str, str]) -> dict[str, str]:
    # A clean environment: the test runner's own proxy settings must not leak in.
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", **env}


def as_unprivileged() -> dict[str, Any]:
    """Popen options running the probe as an unprivileged user, as the app role does."""
    if os.geteuid() != 0:
        return {}
    return {"user": "nobody", "group": "nogroup", "extra_groups": []}


def leaked(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode} before listening", pytrace=False)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{what} did not listen on 127.0.0.1:{port} within 30 s", pytrace=False)


def run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"{what} failed ({done.returncode}):\n{done.stdout}{done.stderr}",
                    pytrace=False)



def make_tls_files(workdir: Path) -> dict[str, Path]:
    """A self-signed certificate for 127.0.0.1, its own trust anchor."""
    if shutil.which("openssl") is None:
        pytest.fail(f"openssl is missing; install it: {APT_FIX}", pytrace=False)
    cert, key = workdir / "server.crt", workdir / "server.key"
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        "openssl req")
    return {"cert": cert, "key": key}



@contextmanager
def postgres_server(workdir: Path, tls_files: dict[str, Path]) -> Iterator[int]:
    """A PostgreSQL server on loopback (plain and TLS) with user probe; yields its port."""
    initdbs = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                     key=lambda p: int(p.parts[-3]))
    if not initdbs:
        pytest.fail(f"PostgreSQL server binaries are missing; install them: {APT_FIX}",
                    pytrace=False)
    bindir = initdbs[-1].parent
    root = workdir / "pg"
    root.mkdir()
    pwfile = root / "pwfile"
    pwfile.touch(mode=0o600)  # 0600 before the password is in it
    pwfile.write_text(DB_PASSWORD + "\n")
    shutil.copy(tls_files["cert"], root / "server.crt")
    shutil.copy(tls_files["key"], root / "server.key")
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root.
        as_postgres = ["runuser", "-u", "postgres", "--"]
        for path in (root, *root.iterdir()):
            shutil.chown(path, "postgres", "postgres")
    (root / "server.key").chmod(0o600)  # PostgreSQL refuses a key others can read
    data = root / "data"
    run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", "probe",
         f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"], "initdb")
    port = free_port()
    options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c ssl=on "
               f"-c ssl_cert_file={root}/server.crt -c ssl_key_file={root}/server.key")
    run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"),
         "-w", "-t", "60", "-o", options, "start"], "pg_ctl start")
    try:
        yield port
    finally:
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m",
                        "immediate", "stop"], capture_output=True, check=False)



@contextmanager
def redis_server(workdir: Path, tls_files: dict[str, Path]) -> Iterator[tuple[int, int]]:
    """(plain port, TLS port) of a Redis server with an ACL user and no default user."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail(f"redis-server is missing; install it: {APT_FIX}", pytrace=False)
    port, tls_port = free_port(), free_port()
    conf = workdir / "redis.conf"
    conf.touch(mode=0o600)
    # The password goes into a 0600 file, never into argv.
    conf.write_text(
        f"bind 127.0.0.1\nport {port}\ntls-port {tls_port}\n"
        f"tls-cert-file {tls_files['cert']}\ntls-key-file {tls_files['key']}\n"
        f"tls-ca-cert-file {tls_files['cert']}\ntls-auth-clients no\n"
        f'save ""\nappendonly no\ndir {workdir}\n'
        f"user default off\nuser probe on >{REDIS_PASSWORD} ~* &* +@all\n")
    with (workdir / "redis.log").open("wb") as log:
        proc = subprocess.Popen([server, str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, "redis-server")
        wait_for_port(tls_port, proc, "redis-server (TLS)")
        yield port, tls_port
    finally:
        proc.terminate()
        proc.wait(timeout=20)



class Probe:
    """The probe app as a subprocess of the system python3, on a free loopback port."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        if not Path(SYSTEM_PYTHON).exists():
            pytest.fail(f"{SYSTEM_PYTHON} is missing; install python3: {APT_FIX}",
                        pytrace=False)
        self.port = free_port()
        self.log = log
        with log.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [SYSTEM_PYTHON, str(PROBE)], env=probe_env({**env, "LISTEN_PORT": str(self.port)}),
                stdout=subprocess.DEVNULL, stderr=stderr, **as_unprivileged())
        wait_for_port(self.port, self.proc, "contract probe")

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            body = response.read().decode()
        finally:
            conn.close()
        assert leaked(body) == [], f"secret in the response to {path}"
        return response.status, body

    def healthz(self) -> tuple[int, dict[str, Any]]:
        status, body = self.get("/healthz")
        return status, json.loads(body)

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        return code, self.log.read_text()



class FakeProxy(socketserver.ThreadingTCPServer):
    """A CONNECT proxy on loopback that answers from a table and records what it got."""

    daemon_threads = True
    answers: ClassVar[dict[str, bytes]] = {
        "allowed.example:443": b"200 Connection established",
        "denied.example:443": b"403 Forbidden",
        "offline.example:443": b"503 Service Unavailable",
        "auth.example:443": b"407 Proxy Authentication Required",
    }

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeProxyHandler)
        self.seen: list[tuple[bytes, bytes]] = []
        self._arrived = threading.Condition()

    def record(self, request: bytes, data: bytes) -> None:
        with self._arrived:
            self.seen.append((request, data))
            self._arrived.notify_all()

    def mark(self) -> int:
        """Where the log stands now: pass it to `wait_for` to see only later requests."""
        with self._arrived:
            return len(self.seen)

    def wait_for(self, target: str, after: int, timeout: float = 30) -> tuple[bytes, bytes]:
        """The first request for ``target`` (``host:port``) recorded after ``after``; an
        earlier request for the same target, or one for another target, never counts."""
        def match() -> tuple[bytes, bytes] | None:
            return next((entry for entry in self.seen[after:]
                         if entry[0].split(b" ")[1:2] == [target.encode()]), None)

        with self._arrived:
            self._arrived.wait_for(lambda: match() is not None, timeout=timeout)
            found = match()
            if found is None:
                pytest.fail(f"no request for {target} reached the fake proxy within "
                            f"{timeout:.0f} s; it saw {self.seen[after:]!r}", pytrace=False)
            return found


class FakeProxyHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: FakeProxy = self.server  # type: ignore[assignment]
        request = self.rfile.readline().rstrip(b"\r\n")
        while self.rfile.readline() not in (b"\r\n", b""):
            pass
        target = request.split(b" ")[1].decode() if request.count(b" ") == 2 else ""
        status = server.answers.get(target, b"400 Bad Request")
        self.wfile.write(b"HTTP/1.1 " + status + b"\r\n\r\n")
        # Whatever arrives after the answer would be data sent through the tunnel.
        self.wfile.flush()
        self.connection.settimeout(5)
        data = b""
        try:
            while chunk := self.rfile.read1(65536):
                data += chunk
        except TimeoutError:
            pass  # the client kept the tunnel open: what it sent so far is what went through
        server.record(request, data)



def ws_connect(port: int) -> tuple[socket.socket, str, str]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 f"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "connection closed during the handshake"
        head += chunk
    return sock, head.decode(), key


def ws_send(sock: socket.socket, opcode: int, payload: bytes, fin: bool = True) -> None:
    mask = os.urandom(4)
    size = len(payload)
    header = bytes([(0x80 if fin else 0) | opcode])
    if size < 126:
        header += bytes([0x80 | size])
    else:
        header += bytes([0x80 | 126]) + size.to_bytes(2, "big")
    sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def ws_recv(sock: socket.socket) -> tuple[int, bytes]:
    def exact(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "connection closed mid-frame"
            data += chunk
        return data

    first, second = exact(2)
    size = second & 0x7F
    if size == 126:
        size = int.from_bytes(exact(2), "big")
    elif size == 127:
        size = int.from_bytes(exact(8), "big")
    return first & 0x0F, exact(size)

