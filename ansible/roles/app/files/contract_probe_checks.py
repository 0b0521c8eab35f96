"""Wiring checks of the selfhost contract probe: database, cache, AI, email,
monitoring and the egress proxy, with every secret kept out of their reports.

Imported by contract_probe.py from the same directory.
"""

from __future__ import annotations

import importlib
import os
import re
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

APP_NAME = "selfhost contract probe"
VERSION = "1.0"
CHECK_TIMEOUT = 3
CACHE_SECONDS = 2.0
EGRESS_TIMEOUT = 5.0

CONTRACT_KEYS = (
    "DATABASE_URL", "REDIS_URL", "AI_PROVIDER", "OPENAI_API_KEY", "ANTHROPIC_API_KEY",
    "AI_MODELS", "HTTPS_PROXY", "NO_PROXY", "SMTP_URL", "SENTRY_DSN", "DD_API_KEY",
    "DD_SITE", "MONITORING_ENDPOINT", "PUBLIC_URL", "SECRET_KEY",
)
AI_KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
SECRET_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "SENTRY_DSN", "DD_API_KEY", "SECRET_KEY")
URL_KEYS = ("DATABASE_URL", "REDIS_URL", "SMTP_URL", "HTTPS_PROXY", "MONITORING_ENDPOINT")
# libpq accepts credentials as URI query parameters too.
PASSWORD_PARAMS = {"password", "sslpassword"}

Env = Mapping[str, str]


def _optional(name: str) -> Any:
    # A missing Debian package is reported by the check that needs it, not a crash.
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


psycopg2 = _optional("psycopg2")
redis = _optional("redis")


def secret_values(env: Env) -> list[str]:
    """Every secret string the environment holds, longest first, for scrubbing."""
    found = {env[k] for k in SECRET_KEYS if env.get(k)}
    for key in URL_KEYS:
        try:
            parts = urlsplit(env.get(key, ""))
        except ValueError:
            continue
        candidates = [parts.password or ""]
        candidates += [v for k, v in parse_qsl(parts.query) if k.lower() in PASSWORD_PARAMS]
        # Raw and decoded forms: an error message may quote either.
        found.update(c for v in candidates if v for c in (v, unquote(v)))
    try:  # a Sentry DSN's user part is its key
        dsn_key = urlsplit(env.get("SENTRY_DSN", "")).username
    except ValueError:
        dsn_key = None
    if dsn_key:
        found.add(dsn_key)
    return sorted(found, key=len, reverse=True)


def scrub(value: Any, secrets: Sequence[str]) -> Any:
    """Replace secrets in every string of a JSON-like tree (defence in depth)."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "***")
        return value
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secrets) for v in value]
    return value


def redact_url(url: str) -> str:
    """The URL with its password (userinfo or query) replaced by ***."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "(unparseable URL)"
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    if parts.username is not None:
        password = ":***" if parts.password is not None else ""
        netloc = f"{parts.username}{password}@{netloc}"
    query = urlencode(
        [(k, "***" if k.lower() in PASSWORD_PARAMS else v)
         for k, v in parse_qsl(parts.query, keep_blank_values=True)],
        safe="/*", quote_via=quote,
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _one_line(exc: BaseException) -> str:
    # libpq messages span lines; a health report wants one short line.
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def check_database(env: Env) -> dict[str, Any]:
    url = env.get("DATABASE_URL", "")
    result: dict[str, Any] = {"ok": False, "detail": "", "tls": None, "server_version": None,
                              "url": redact_url(url) if url else None}
    if not url:
        result["detail"] = "DATABASE_URL is not set"
    elif psycopg2 is None:
        result["detail"] = "python3-psycopg2 is not installed"
    else:
        try:
            conn = psycopg2.connect(url, connect_timeout=CHECK_TIMEOUT,
                                    application_name="selfhost-contract-probe")
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT version(), current_setting('server_version'), "
                                "(SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())")
                    version, short_version, ssl = cur.fetchone()
            finally:
                conn.close()
            result.update(ok=True, detail=str(version), tls=bool(ssl),
                          server_version=str(short_version))
        except Exception as exc:  # any failure is a failed check, never a crash
            result["detail"] = f"connection failed: {_one_line(exc)}"
    return result


# The canary rows (table selfhost_probe_canary): data a test writes before a backup
# and reads after a restore. The statements are constants; the value is a parameter.
_CANARY_CREATE = ("CREATE TABLE IF NOT EXISTS selfhost_probe_canary (id bigserial PRIMARY KEY, "
                  "value text NOT NULL, written timestamptz NOT NULL DEFAULT now())")
_CANARY_INSERT = "INSERT INTO selfhost_probe_canary (value) VALUES (%s)"
_CANARY_SELECT = "SELECT value, written FROM selfhost_probe_canary ORDER BY id LIMIT 200"


def _canary_conn(env: Env) -> Any:
    url = env.get("DATABASE_URL", "")
    if not url or psycopg2 is None:
        raise RuntimeError("DATABASE_URL is not set" if not url
                           else "python3-psycopg2 is not installed")
    return psycopg2.connect(url, connect_timeout=CHECK_TIMEOUT,
                            application_name="selfhost-contract-probe")


def canary(env: Env, value: str | None) -> dict[str, Any]:
    """Write ``value`` as a canary row (when given), then read every row back.

    The table lives in the app's own database, so a backup and restore of that
    database carries the rows with it.
    """
    try:
        conn = _canary_conn(env)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(_CANARY_CREATE)
                if value is not None:
                    cur.execute(_CANARY_INSERT, (value,))
                cur.execute(_CANARY_SELECT)
                rows = [{"value": v, "written": w.isoformat()} for v, w in cur.fetchall()]
        finally:
            conn.close()
    except Exception as exc:  # reported, never a crash
        return {"ok": False, "detail": f"database: {_one_line(exc)}", "rows": []}
    return {"ok": True, "detail": "", "rows": rows}


def schema_version(conn: Any) -> int | None:
    """The probe's schema version (contract_probe_migrate.py), None before any."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('probe_schema') IS NOT NULL")
        if not cur.fetchone()[0]:
            return None
        cur.execute("SELECT version FROM probe_schema")
        row = cur.fetchone()
    return None if row is None else int(row[0])


def check_schema(env: Env, expected: int) -> dict[str, Any]:
    """Whether the database schema is the one this release needs."""
    result: dict[str, Any] = {"ok": False, "version": None, "expected": expected,
                              "detail": ""}
    if psycopg2 is None or not env.get("DATABASE_URL"):
        result["detail"] = "no database to read the schema from"
        return result
    try:
        conn = psycopg2.connect(env["DATABASE_URL"], connect_timeout=CHECK_TIMEOUT,
                                application_name="selfhost-contract-probe")
        try:
            version = schema_version(conn)
        finally:
            conn.close()
    except Exception as exc:  # any failure is a failed check, never a crash
        result["detail"] = f"cannot read the schema: {_one_line(exc)}"
        return result
    result.update(version=version, ok=version == expected,
                  detail=f"schema {version}, this release needs {expected}")
    return result


def check_cache(env: Env) -> dict[str, Any]:
    url = env.get("REDIS_URL", "")
    tls = url.startswith("rediss://")
    result: dict[str, Any] = {"ok": False, "detail": "", "tls": tls,
                              "url": redact_url(url) if url else None}
    options: dict[str, Any] = {"socket_connect_timeout": CHECK_TIMEOUT,
                               "socket_timeout": CHECK_TIMEOUT}
    # The CA of a TLS cache: REDIS_CA_FILE, from the environment (the Plan's, for a local
    # TLS cache) or else the unit's --redis-ca.
    ca_file = env.get("REDIS_CA_FILE", "")
    if tls:
        # Explicit, because redis-py's hostname-check default differs between
        # bookworm (4.3) and trixie (6.x); the database side uses verify-full too.
        options.update(ssl_ca_certs=ca_file, ssl_cert_reqs="required", ssl_check_hostname=True)
    if not url:
        result["detail"] = "REDIS_URL is not set"
    elif redis is None:
        result["detail"] = "python3-redis is not installed"
    elif tls and not ca_file:
        result["detail"] = "no CA file for the cache's TLS (set REDIS_CA_FILE)"
    elif tls and not os.path.isfile(ca_file):
        result["detail"] = f"CA file {ca_file} not found (set by REDIS_CA_FILE)"
    else:
        try:
            client = redis.Redis.from_url(url, **options)
            try:
                client.ping()
            finally:
                client.connection_pool.disconnect()
            result.update(ok=True, detail="PING answered" + (" over TLS" if tls else ""))
        except Exception as exc:  # any failure is a failed check, never a crash
            result["detail"] = f"PING failed: {_one_line(exc)}"
    return result


def check_ai(env: Env) -> dict[str, Any]:
    """AI wiring is consistent when exactly the chosen provider's key is present."""
    provider = env.get("AI_PROVIDER", "")
    present = sorted(k for k in AI_KEYS.values() if env.get(k))
    proxy = env.get("HTTPS_PROXY") or None
    problems: list[str] = []
    if provider == "none":
        key_present = bool(present)
        problems += [f"AI is disabled but {k} is set" for k in present]
    elif provider in AI_KEYS:
        own = AI_KEYS[provider]
        key_present = own in present
        if not key_present:
            problems.append(f"{own} is not set")
        problems += [f"{k} belongs to another provider" for k in present if k != own]
        if proxy is None:
            problems.append("HTTPS_PROXY is not set, so provider calls cannot leave the host")
    else:
        # An unknown value is not echoed: a misplaced key must not leak through it.
        key_present = bool(present)
        problems.append("AI_PROVIDER must be openai, anthropic or none"
                        + ("" if provider else " (it is not set)"))
    if problems:
        detail = "; ".join(problems)
    elif provider == "none":
        detail = "AI disabled, no provider key present"
    else:
        detail = f"{provider} key present; requests go through the egress proxy"
    return {
        "provider": provider if provider in (*AI_KEYS, "none") else None,
        "key_present": key_present,
        "models": [m.strip() for m in env.get("AI_MODELS", "").split(",") if m.strip()],
        "proxy": redact_url(proxy) if proxy else None,
        "ok": not problems,
        "detail": detail,
    }


def check_email(env: Env) -> dict[str, Any]:
    url = env.get("SMTP_URL", "")
    if not url:
        return {"configured": False, "ok": True, "url": None, "detail": "email disabled"}
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("smtp", "smtps") and bool(parts.hostname) and bool(parts.port)
    except ValueError:
        valid = False
    detail = "relay configured" if valid else "SMTP_URL must be smtp://USER:PASSWORD@HOST:PORT"
    return {"configured": True, "ok": valid, "url": redact_url(url), "detail": detail}


def check_monitoring(env: Env) -> dict[str, Any]:
    targets: dict[str, str | None] = {}
    if env.get("SENTRY_DSN"):
        try:  # only the host: the DSN's user part is its key
            targets["sentry"] = urlsplit(env["SENTRY_DSN"]).hostname
        except ValueError:
            targets["sentry"] = None
    if env.get("DD_API_KEY") or env.get("DD_SITE"):
        targets["datadog"] = env.get("DD_SITE") if env.get("DD_API_KEY") else None
    if env.get("MONITORING_ENDPOINT"):
        targets["self-hosted"] = redact_url(env["MONITORING_ENDPOINT"])
    problems = [f"{kind} is incompletely configured" for kind, t in targets.items() if not t]
    if len(targets) > 1:
        problems.append("more than one monitoring destination is configured")
    return {"configured": bool(targets), "providers": sorted(targets),
            "targets": [t for t in targets.values() if t], "ok": not problems,
            "detail": "; ".join(problems) or ("configured" if targets else "monitoring disabled")}


def run_checks(env: Env, release: str | None = None,
               schema: int | None = None) -> tuple[bool, dict[str, Any]]:
    """The /healthz report. Healthy: database, cache and AI wiring all ok (and the
    schema the one ``schema`` names, when the release needs one); email and
    monitoring are reported but do not decide health."""
    checks = {"database": check_database(env), "cache": check_cache(env), "ai": check_ai(env),
              "email": check_email(env), "monitoring": check_monitoring(env)}
    deciding = ["database", "cache", "ai"]
    if schema is not None:
        checks["schema"] = check_schema(env, schema)
        deciding.append("schema")
    healthy = all(checks[name]["ok"] for name in deciding)
    report = {"app": APP_NAME, "version": VERSION, "release": release,
              "schema_version": checks["schema"]["version"] if schema is not None else None,
              "status": "ok" if healthy else "degraded",
              "checks": checks, "env_keys": sorted(k for k in CONTRACT_KEYS if env.get(k))}
    return healthy, cast(dict[str, Any], scrub(report, secret_values(env)))


def probe_egress(env: Env, host: str, port: int) -> dict[str, Any]:
    """Ask the egress proxy for a tunnel to host:port and close it unused.

    allowed: true (tunnel opened, or 502/503/504: admitted but unreachable),
    false (403/407), null (no answer or any other status)."""
    result: dict[str, Any] = {"host": host, "port": port, "proxy": None, "proxy_status": None,
                              "allowed": None, "reachable": None, "detail": ""}
    proxy_url = env.get("HTTPS_PROXY", "")
    try:
        parts = urlsplit(proxy_url)
        proxy_host, proxy_port = parts.hostname, parts.port or 80
    except ValueError:
        proxy_host, proxy_port = None, 0
    if not proxy_host or not proxy_url.startswith("http://"):
        result["detail"] = "HTTPS_PROXY must be set to http://HOST:PORT"
        return result
    result["proxy"] = redact_url(proxy_url)
    target = f"{host}:{port}"
    request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode("ascii")
    deadline = time.monotonic() + EGRESS_TIMEOUT
    answer = b""
    try:
        with socket.create_connection((proxy_host, proxy_port), timeout=EGRESS_TIMEOUT) as sock:
            sock.sendall(request)
            while b"\r\n" not in answer and len(answer) < 8192:
                sock.settimeout(max(deadline - time.monotonic(), 0.01))
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
    except TimeoutError:
        result["detail"] = f"no answer from the proxy within {EGRESS_TIMEOUT:g} s"
        return result
    except OSError as exc:
        result["detail"] = f"proxy not reachable: {_one_line(exc)}"
        return result
    match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    if match is None:
        result["detail"] = "the proxy's answer is not an HTTP status line"
        return result
    status = int(match.group(1))
    result["proxy_status"] = status
    if 200 <= status < 300:
        result.update(allowed=True, reachable=True, detail="tunnel opened and closed unused")
    elif status in (502, 503, 504):
        result.update(allowed=True, reachable=False,
                      detail="admitted by the proxy, which could not reach the destination")
    elif status in (403, 407):
        result.update(allowed=False, detail="refused by the proxy")
    else:
        result["detail"] = f"unexpected proxy status {status}"
    return result


class Checker:
    """Caches the report briefly, so bursts of health checks hit the services once."""

    def __init__(self, env: Env, release: str | None = None,
                 schema: int | None = None) -> None:
        self._env, self._release, self._schema = env, release, schema
        self._lock = threading.Lock()
        self._result: tuple[bool, dict[str, Any]] | None = None
        self._at = 0.0

    def report(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            if self._result is None or time.monotonic() - self._at >= CACHE_SECONDS:
                self._result = run_checks(self._env, self._release, self._schema)
                self._at = time.monotonic()
            return self._result
