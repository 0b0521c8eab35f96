"""The egress proxy's access log -> the destinations contacted since the last deploy. Pure.

The proxy writes Squid's native format, one request a line::

    1764230000.123    45 127.0.0.1 TCP_TUNNEL/200 4321 CONNECT api.openai.com:443 - ...

A CONNECT names ``host:port``; a plain request names a URL, reduced here to
``host:port``. Refused requests (``TCP_DENIED``, status 403/407) are kept apart:
they prove the allowlist held, not that data left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass
class Destination:
    """What the log says about one ``host:port``."""

    requests: int = 0
    refused: int = 0
    first: float = 0.0
    last: float = 0.0
    statuses: set[str] = field(default_factory=set)

    def describe(self) -> str:
        admitted = self.requests - self.refused
        parts = [f"{admitted} admitted"] if admitted else []
        if self.refused:
            parts.append(f"{self.refused} refused")
        return ", ".join(parts) + f", last {_iso(self.last)}"


def refused(dest: Destination) -> bool:
    """True when every request to the destination was refused by the proxy."""
    return dest.requests == dest.refused


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def deploy_time(record: dict[str, Any]) -> str | None:
    """The time of the last deploy from the record section of a host's facts."""
    if not record.get("exists") or "data" not in record:
        return None
    value = record["data"].get("time") or record["data"].get("deployed_at")
    return str(value) if value else None


def _parse_time(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _target(method: str, url: str) -> str | None:
    if method == "CONNECT":
        host, _, number = url.rpartition(":")
        return f"{host.lower()}:{number}" if host and number.isdigit() else None
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 80)
    except ValueError:
        return None
    return f"{parts.hostname.lower()}:{port}"


def destinations(lines: list[str], since: str | None) -> dict[str, Destination]:
    """Every ``host:port`` requested through the proxy at or after ``since``."""
    start = _parse_time(since)
    out: dict[str, Destination] = {}
    for line in lines:
        fields = line.split()
        if len(fields) < 7:
            continue
        try:
            ts = float(fields[0])
        except ValueError:
            continue
        if ts < start:
            continue
        target = _target(fields[5], fields[6])
        if target is None:
            continue
        dest = out.setdefault(target, Destination(first=ts))
        dest.requests += 1
        dest.last = max(dest.last, ts)
        status = fields[3]
        dest.statuses.add(status)
        code = status.rpartition("/")[2]
        if status.startswith("TCP_DENIED") or code in ("403", "407"):
            dest.refused += 1
    return out
