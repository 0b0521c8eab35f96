"""The contract probe app against real PostgreSQL and Redis servers on loopback.

The servers are throwaway instances in temp dirs (plain and TLS listeners); the
probe runs with Debian's /usr/bin/python3, which has python3-psycopg2 and
python3-redis, exactly as the app role runs it, as an unprivileged user. Every
response body and every log line of every probe is checked for the secrets it
was given.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from contract_probe_support import (
    ANTHROPIC_KEY,
    DB_PASSWORD,
    OPENAI_KEY,
    PROBE,
    REDIS_PASSWORD,
    SECRET_KEY,
    SYSTEM_PYTHON,
    WRONG_PASSWORD,
    FakeProxy,
    Probe,
    as_unprivileged,
    free_port,
    leaked,
    make_tls_files,
    postgres_server,
    probe_env,
    redis_server,
    ws_connect,
    ws_recv,
    ws_send,
)

pytestmark = pytest.mark.integration

StartProbe = Callable[[dict[str, str]], Probe]


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # Not pytest's tmp_path: the postgres user must be able to enter it.
    root = Path(tempfile.mkdtemp(prefix="contract-probe-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_files(workdir: Path) -> dict[str, Path]:
    return make_tls_files(workdir)


@pytest.fixture(scope="module")
def postgres(workdir: Path, tls_files: dict[str, Path]) -> Iterator[int]:
    with postgres_server(workdir, tls_files) as port:
        yield port


@pytest.fixture(scope="module")
def redis_ports(workdir: Path, tls_files: dict[str, Path]) -> Iterator[tuple[int, int]]:
    with redis_server(workdir, tls_files) as ports:
        yield ports


@pytest.fixture(scope="module")
def wiring(postgres: int, redis_ports: tuple[int, int]) -> dict[str, str]:
    """A consistent contract environment: AI disabled, no TLS."""
    return {
        "DATABASE_URL": f"postgresql://probe:{DB_PASSWORD}@127.0.0.1:{postgres}/postgres"
                        "?sslmode=disable",
        "REDIS_URL": f"redis://probe:{REDIS_PASSWORD}@127.0.0.1:{redis_ports[0]}/0",
        "AI_PROVIDER": "none",
        "HTTPS_PROXY": "http://127.0.0.1:3128",
        "NO_PROXY": "127.0.0.1,localhost",
        "PUBLIC_URL": "https://chat.example.test",
        "SECRET_KEY": SECRET_KEY,
    }



@pytest.fixture
def start_probe(tmp_path: Path) -> Iterator[StartProbe]:
    probes: list[Probe] = []

    def start(env: dict[str, str]) -> Probe:
        probes.append(Probe(env, tmp_path / f"probe{len(probes)}.log"))
        return probes[-1]

    yield start
    for probe in probes:
        code, stderr = probe.stop()
        assert (code, leaked(stderr)) == (0, []), "probe did not stop cleanly or logged a secret"


def test_healthz_reports_working_wiring(start_probe: StartProbe, wiring: dict[str, str],
                                        postgres: int) -> None:
    status, report = start_probe(wiring).healthz()
    checks = report["checks"]
    assert (status, report["status"]) == (200, "ok")
    assert report["app"] == "selfhost contract probe"
    assert (checks["database"]["ok"], checks["database"]["tls"]) == (True, False)
    assert checks["database"]["server_version"]
    assert checks["database"]["url"] == (f"postgresql://probe:***@127.0.0.1:{postgres}"
                                         "/postgres?sslmode=disable")
    assert (checks["cache"]["ok"], checks["cache"]["tls"]) == (True, False)
    assert checks["ai"] == {"provider": "none", "key_present": False, "models": [],
                            "proxy": "http://127.0.0.1:3128", "ok": True,
                            "detail": "AI disabled, no provider key present"}
    assert report["env_keys"] == sorted(wiring)


def test_healthz_reports_tls_connections(start_probe: StartProbe, wiring: dict[str, str],
                                         postgres: int, redis_ports: tuple[int, int],
                                         tls_files: dict[str, Path]) -> None:
    ca = tls_files["cert"]
    env = {**wiring,
           "DATABASE_URL": f"postgresql://probe:{DB_PASSWORD}@127.0.0.1:{postgres}/postgres"
                           f"?sslmode=verify-full&sslrootcert={ca}",
           "REDIS_URL": f"rediss://probe:{REDIS_PASSWORD}@127.0.0.1:{redis_ports[1]}/0",
           "REDIS_CA_FILE": str(ca)}
    status, report = start_probe(env).healthz()
    checks = report["checks"]
    assert status == 200, report
    assert (checks["database"]["tls"], checks["cache"]["tls"]) == (True, True)


def test_rediss_without_the_ca_file_is_degraded(start_probe: StartProbe,
                                                wiring: dict[str, str],
                                                redis_ports: tuple[int, int],
                                                workdir: Path) -> None:
    env = {**wiring, "REDIS_URL": f"rediss://probe:{REDIS_PASSWORD}@127.0.0.1:"
                                  f"{redis_ports[1]}/0",
           "REDIS_CA_FILE": str(workdir / "missing-ca.crt")}
    status, report = start_probe(env).healthz()
    assert (status, report["checks"]["cache"]["detail"]) == (
        503, f"CA file {workdir / 'missing-ca.crt'} not found (set by REDIS_CA_FILE)")


def test_wrong_database_password_is_503_without_any_password(start_probe: StartProbe,
                                                             wiring: dict[str, str]) -> None:
    env = {**wiring, "DATABASE_URL": wiring["DATABASE_URL"].replace(DB_PASSWORD,
                                                                     WRONG_PASSWORD)}
    status, report = start_probe(env).healthz()
    database = report["checks"]["database"]
    assert (status, report["status"], database["ok"]) == (503, "degraded", False)
    assert "password authentication failed" in database["detail"]
    assert "probe:***@" in database["url"]


def test_wrong_cache_password_is_503(start_probe: StartProbe, wiring: dict[str, str]) -> None:
    env = {**wiring, "REDIS_URL": wiring["REDIS_URL"].replace(REDIS_PASSWORD, WRONG_PASSWORD)}
    status, report = start_probe(env).healthz()
    assert (status, report["checks"]["cache"]["ok"]) == (503, False)


AI_CASES = [
    pytest.param("openai", {"OPENAI_API_KEY": OPENAI_KEY}, True, id="openai-with-its-key"),
    pytest.param("anthropic", {"ANTHROPIC_API_KEY": ANTHROPIC_KEY}, True,
                 id="anthropic-with-its-key"),
    pytest.param("none", {}, True, id="none-without-keys"),
    pytest.param("none", {"OPENAI_API_KEY": OPENAI_KEY}, False, id="none-with-a-key"),
    pytest.param("openai", {}, False, id="openai-without-key"),
    pytest.param("anthropic", {"OPENAI_API_KEY": OPENAI_KEY}, False, id="anthropic-wrong-key"),
    pytest.param("openai", {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY},
                 False, id="openai-with-both-keys"),
    pytest.param(OPENAI_KEY, {"OPENAI_API_KEY": OPENAI_KEY}, False, id="unknown-provider"),
]


@pytest.mark.parametrize(("provider", "keys", "consistent"), AI_CASES)
def test_ai_wiring_consistency_decides_health(start_probe: StartProbe, wiring: dict[str, str],
                                              provider: str, keys: dict[str, str],
                                              consistent: bool) -> None:
    status, report = start_probe({**wiring, "AI_PROVIDER": provider, **keys}).healthz()
    assert (status, report["checks"]["ai"]["ok"]) == (200 if consistent else 503, consistent)


def test_ai_report_names_provider_models_and_proxy(start_probe: StartProbe,
                                                   wiring: dict[str, str]) -> None:
    env = {**wiring, "AI_PROVIDER": "openai", "OPENAI_API_KEY": OPENAI_KEY,
           "AI_MODELS": "gpt-4o, gpt-4o-mini"}
    _, report = start_probe(env).healthz()
    assert report["checks"]["ai"] == {
        "provider": "openai", "key_present": True, "models": ["gpt-4o", "gpt-4o-mini"],
        "proxy": "http://127.0.0.1:3128", "ok": True,
        "detail": "openai key present; requests go through the egress proxy"}


def test_index_names_the_probe_and_links_healthz(start_probe: StartProbe,
                                                 wiring: dict[str, str]) -> None:
    status, body = start_probe(wiring).get("/")
    assert (status, "<h1>selfhost contract probe</h1>" in body,
            'href="/healthz"' in body) == (200, True, True)


def test_client_shows_the_forwarding_headers_as_received(start_probe: StartProbe,
                                                         wiring: dict[str, str]) -> None:
    status, body = start_probe(wiring).get("/client", {"X-Forwarded-For": "192.0.2.7"})
    assert (status, json.loads(body)) == (200, {"peer": "127.0.0.1",
                                                "X-Forwarded-For": ["192.0.2.7"],
                                                "X-Real-IP": [], "Forwarded": []})


@pytest.fixture
def fake_proxy() -> Iterator[FakeProxy]:
    # One per test: a test reads only the requests that its own probe sent.
    proxy = FakeProxy()
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield proxy
    proxy.shutdown()
    proxy.server_close()


@pytest.fixture
def egress_probe(start_probe: StartProbe, wiring: dict[str, str],
                 fake_proxy: FakeProxy) -> Probe:
    proxy_url = f"http://127.0.0.1:{fake_proxy.server_address[1]}"
    return start_probe({**wiring, "HTTPS_PROXY": proxy_url})


@pytest.mark.parametrize(("host", "expected"), [
    ("allowed.example", (200, 200, True, True)),
    ("denied.example", (200, 403, False, None)),
    ("offline.example", (200, 503, True, False)),
    ("auth.example", (200, 407, False, None)),
])
def test_egress_reports_the_proxy_decision(egress_probe: Probe, host: str,
                                           expected: tuple[int, int, bool, bool | None]) -> None:
    status, body = egress_probe.get(f"/egress?host={host}&port=443")
    answer = json.loads(body)
    assert (status, answer["proxy_status"], answer["allowed"], answer["reachable"]) == expected


def test_egress_opens_the_tunnel_without_sending_data(egress_probe: Probe,
                                                      fake_proxy: FakeProxy) -> None:
    before = fake_proxy.mark()
    egress_probe.get("/egress?host=allowed.example&port=443")
    request = fake_proxy.wait_for("allowed.example:443", after=before)
    assert request == (b"CONNECT allowed.example:443 HTTP/1.1", b"")


@pytest.mark.parametrize(("query", "headers", "expected"), [
    ("host=allowed.example&port=443", {"X-Forwarded-For": "127.0.0.1"}, 403),
    ("host=allowed.example&port=443", {"X-Real-IP": "127.0.0.1"}, 403),
    ("host=allowed.example%0d%0aX-Injected:%20yes&port=443", {}, 400),
    ("host=allowed.example&port=0", {}, 400),
    ("host=allowed.example", {}, 400),
])
def test_egress_refuses_forwarded_or_malformed_requests(egress_probe: Probe, query: str,
                                                        headers: dict[str, str],
                                                        expected: int) -> None:
    assert egress_probe.get(f"/egress?{query}", headers)[0] == expected


def test_egress_without_a_listening_proxy(start_probe: StartProbe,
                                          wiring: dict[str, str]) -> None:
    probe = start_probe({**wiring, "HTTPS_PROXY": f"http://127.0.0.1:{free_port()}"})
    answer = json.loads(probe.get("/egress?host=allowed.example&port=443")[1])
    assert (answer["allowed"], answer["detail"].startswith("proxy not reachable")) == (None, True)


def test_websocket_handshake_accepts_the_key(start_probe: StartProbe,
                                             wiring: dict[str, str]) -> None:
    sock, head, key = ws_connect(start_probe(wiring).port)
    sock.close()
    accept = base64.b64encode(hashlib.sha1(
        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    assert (head.startswith("HTTP/1.1 101 "), f"Sec-WebSocket-Accept: {accept}\r\n" in head) \
        == (True, True)


def test_websocket_echoes_messages_answers_ping_and_close(start_probe: StartProbe,
                                                          wiring: dict[str, str]) -> None:
    sock, _, _ = ws_connect(start_probe(wiring).port)
    with sock:
        long_text = "é" * 400  # over 125 bytes: the 16-bit length form
        ws_send(sock, 1, "héllo".encode())
        ws_send(sock, 1, long_text.encode())
        ws_send(sock, 1, b"frag", fin=False)
        ws_send(sock, 0, b"mented")
        ws_send(sock, 9, b"are you there")
        ws_send(sock, 8, (1000).to_bytes(2, "big"))
        frames = [ws_recv(sock) for _ in range(5)]
    assert frames == [(1, "héllo".encode()), (1, long_text.encode()), (1, b"fragmented"),
                      (10, b"are you there"), (8, (1000).to_bytes(2, "big"))]


def test_websocket_path_without_upgrade_is_400(start_probe: StartProbe,
                                               wiring: dict[str, str]) -> None:
    assert start_probe(wiring).get("/ws")[0] == 400


def test_log_has_one_line_per_request_and_no_query(tmp_path: Path,
                                                   wiring: dict[str, str]) -> None:
    probe = Probe({**wiring, "OPENAI_API_KEY": OPENAI_KEY}, tmp_path / "probe.log")
    try:
        probe.get(f"/healthz?token={SECRET_KEY}")
        probe.get("/nowhere?q=1")
    finally:
        code, stderr = probe.stop()
    lines = stderr.splitlines()
    assert (code, leaked(stderr), "?" in stderr) == (0, [], False)
    assert lines[1:] == ["127.0.0.1 GET /healthz 503", "127.0.0.1 GET /nowhere 404",
                         "stopping"]


@pytest.mark.parametrize(("password", "expected"), [
    pytest.param(DB_PASSWORD, 0, id="working-wiring"),
    pytest.param(WRONG_PASSWORD, 1, id="wrong-database-password"),
])
def test_check_flag_exit_code(wiring: dict[str, str], password: str, expected: int) -> None:
    env = {**wiring, "DATABASE_URL": wiring["DATABASE_URL"].replace(DB_PASSWORD, password)}
    done = subprocess.run([SYSTEM_PYTHON, str(PROBE), "--check"], env=probe_env(env),
                          capture_output=True, text=True, timeout=60, check=False,
                          **as_unprivileged())
    assert done.returncode == expected


def test_check_flag_prints_the_report_without_secrets(wiring: dict[str, str]) -> None:
    env = {**wiring, "AI_PROVIDER": "openai", "OPENAI_API_KEY": OPENAI_KEY}
    done = subprocess.run([SYSTEM_PYTHON, str(PROBE), "--check"], env=probe_env(env),
                          capture_output=True, text=True, timeout=60, check=False,
                          **as_unprivileged())
    report = json.loads(done.stdout)
    assert (report["status"], leaked(done.stdout + done.stderr)) == ("ok", [])
