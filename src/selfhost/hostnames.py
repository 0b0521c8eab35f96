"""Host names and addresses as every input is checked for them (RFC 1123)."""

from __future__ import annotations

import ipaddress
import re

# Matched with fullmatch: ``re.match(...$)`` would accept a trailing newline.
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def hostname(value: str) -> str:
    """RFC 1123 host name; single-label names are valid (``db``, ``app1``)."""
    name = value[:-1] if value.endswith(".") else value
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(p) for p in name.split(".")):
        raise ValueError(
            f"{value!r} is not a valid host name (RFC 1123: labels of letters, digits and "
            "hyphens, 1-63 characters, not starting or ending with a hyphen)"
        )
    return name.lower()


def host_or_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return hostname(value)


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
