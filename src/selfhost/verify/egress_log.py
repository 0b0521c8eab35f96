"""The egress proxy's access log -> the destinations contacted since the last deploy. Pure.

The proxy writes Squid's native format, one request a line::

    1764230000.123    45 127.0.0.1 TCP_TUNNEL/200 4321 CONNECT api.openai.com:443 - ...

A CONNECT names ``host:port``; a plain request names a URL, reduced here to
``host:port``. The hierarchy field says whether the proxy connected onwards
(``HIER_DIRECT/ADDRESS``) or not (``HIER_NONE``): only the former can have
carried data. Refused requests (``TCP_DENIED``, 403/407) prove the allowlist held.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass
class Destination:
    """What the log says about one ``host:port``."""

    requests: int = 0
    #: the proxy connected to the destination (a hierarchy code other than HIER_NONE)
    contacted: int = 0
    #: the proxy refused the request (TCP_DENIED, 403, 407)
    refused: int = 0
    first: float = 0.0
    last: float = 0.0
    statuses: set[str] = field(default_factory=set)

    def describe(self) -> str:
        parts = [f"{self.contacted} contacted"] if self.contacted else []
        if self.refused:
            parts.append(f"{self.refused} refused")
        unreached = self.requests - self.contacted - self.refused
        if unreached:
            parts.append(f"{unreached} not reached")
        return ", ".join(parts) + f", last {iso_time(self.last)}"


def contacted(dest: Destination) -> bool:
    """True when data could have left: the proxy connected to the destination."""
    return dest.contacted > 0


def on_list(destination: str, allowlist: list[str]) -> bool:
    """Whether ``host:port`` is on the allowlist; ``.example.com:443`` covers the
    domain and every name below it, as squid's dstdomain does."""
    host, _, port = destination.rpartition(":")
    for entry in allowlist:
        allowed_host, _, allowed_port = entry.rpartition(":")
        if allowed_port != port:
            continue
        if host == allowed_host or (allowed_host.startswith(".") and (
                host.endswith(allowed_host) or host == allowed_host[1:])):
            return True
    return False


def iso_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        hierarchy = fields[8] if len(fields) > 8 else "HIER_NONE/-"
        if status.startswith("TCP_DENIED") or code in ("403", "407"):
            dest.refused += 1
        elif not hierarchy.startswith("HIER_NONE") or code.startswith("2"):
            dest.contacted += 1
    return out
