"""External database and cache URLs, read as their clients (libpq, redis-py) read them.

A check that parses a URL differently from the client lets through what the
client then does: libpq takes the *last* of repeated keys
(``sslmode=verify-full&sslmode=disable`` is ``disable``) and accepts
``password=``, ``host=`` and ``hostaddr=`` in the query; redis-py passes
unknown query arguments on to the connection and accepts ``ssl_cert_reqs=none``.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, parse_qsl, urlsplit

from selfhost.hostnames import hostname, is_ip

#: libpq URI parameters a DSN may carry, each with the values it may take (None: any
#: single-line value). Everything else is refused: ``host``/``hostaddr``/``port``
#: and ``service`` override the host in the URL, ``password``/``passfile`` belong
#: in the secrets file, and libpq takes the *last* of repeated keys.
_PG_PARAMS: dict[str, frozenset[str] | None] = {
    "sslmode": frozenset({"verify-full"}),
    "sslrootcert": None,
    "connect_timeout": None,
    "application_name": None,
    "target_session_attrs": frozenset({"any", "read-write", "read-only", "primary",
                                       "standby", "prefer-standby"}),
}
#: redis-py ``from_url`` query arguments a URL may carry (redis-py passes unknown
#: ones on to the connection, so only these are accepted)
_REDIS_PARAMS: dict[str, frozenset[str] | None] = {
    "ssl_cert_reqs": frozenset({"required"}),
    "ssl_check_hostname": frozenset({"true"}),
    "ssl_ca_certs": None,
    "socket_timeout": None,
    "socket_connect_timeout": None,
    "health_check_interval": None,
}
_TLS_PARAMS = frozenset({"sslmode", "ssl_cert_reqs", "ssl_check_hostname"})
_OVERRIDES = frozenset({"host", "hostaddr", "port", "password", "passfile", "user",
                        "username", "dbname", "db", "service", "servicefile"})


def _query_problems(query: str, allowed: dict[str, frozenset[str] | None],
                    secret: str) -> list[str]:
    """Each problem of a URL's query: repeated, unknown, overriding or weakening keys."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        return ["the query is not key=value pairs joined by & (check the URL)"]
    out: list[str] = []
    keys = [k for k, _ in pairs]
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        out.append(f"the parameter {key} is given {keys.count(key)} times, and the client "
                   "would use the last one (give it once)")
    # The value the client uses: the last one.
    for key, value in dict(pairs).items():
        if key in _OVERRIDES:
            where = (f"the encrypted secrets file as {secret}" if "pass" in key
                     else "the URL's host, port, user and path")
            out.append(f"the parameter {key}= overrides what the URL says (remove it; "
                       f"that belongs in {where})")
        elif key not in allowed:
            out.append(f"unknown parameter {key} (remove it; allowed: "
                       f"{', '.join(allowed)})")
        elif (values := allowed[key]) is not None and value not in values:
            choice = " or ".join(f"{key}={v}" for v in sorted(values))
            what = ("does not require TLS with full verification" if key in _TLS_PARAMS
                    else "is not a valid value")
            out.append(f"{key}={value} {what} (use {choice})")
    return out


def _userinfo_problems(netloc: str, secret: str) -> list[str]:
    user, at, _ = netloc.rpartition("@")
    if at and ":" in user:
        return [f"the URL contains a password (remove it; selfhost keeps it in the "
                f"encrypted secrets file as {secret})"]
    return []


def check_pg_dsn(dsn: str) -> list[str]:
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        return ["not a PostgreSQL URL (postgresql://user@host:5432/db?sslmode=verify-full)"]
    out = [m.replace("the URL contains", "the DSN contains")
           for m in _userinfo_problems(parts.netloc, "database_password")]
    if parts.fragment:
        out.append("the DSN has a #fragment (remove it)")
    if "sslmode" not in dict(parse_qsl(parts.query, keep_blank_values=True)):
        out.append("the DSN does not require TLS (add ?sslmode=verify-full)")
    out += _query_problems(parts.query, _PG_PARAMS, "database_password")
    out += _host_port_problems(parts)
    return out


def check_redis_url(url: str) -> list[str]:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        return ["not a Redis URL (rediss://user@host:6380/0)"]
    out = _userinfo_problems(parts.netloc, "cache_password")
    if parts.scheme != "rediss":
        out.append("the URL does not use TLS (use the rediss:// scheme)")
    if parts.fragment:
        out.append("the URL has a #fragment (remove it)")
    if parts.path not in ("", "/") and not re.fullmatch(r"/\d{1,2}", parts.path):
        out.append(f"the path {parts.path} is not a database number (use /0)")
    out += _query_problems(parts.query, _REDIS_PARAMS, "cache_password")
    out += _host_port_problems(parts)
    return out


def _host_port_problems(parts: SplitResult) -> list[str]:
    try:
        _ = parts.port
        if parts.hostname and not is_ip(parts.hostname):
            hostname(parts.hostname)
    except ValueError as exc:
        return [str(exc)]
    return []
