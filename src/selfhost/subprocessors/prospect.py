"""A prospect's row settles only the choices that shape its subprocessor list.

A sales engineer's prospect has chosen an AI provider, an e-mail service,
monitoring, a CDN and a residency, not a sender address, a relay host, a
collector endpoint or certificate files. Those settings only a deployment
needs are filled with stand-ins that shape nothing in the list (``.invalid``
names, RFC 6761, which never resolve) and the models of a preset are dropped
when the prospect turns AI off. Everything that does shape the list is
validated by the one Profile model as for a deployment, so an unknown provider
or an unacknowledged transfer still fails the row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_Section = dict[str, Any]

#: (section, key, stand-in, whether the section's choice needs the key)
_STAND_INS: tuple[tuple[str, str, str, Callable[[_Section], bool]], ...] = (
    ("email", "from_address", "prospect@example.invalid",
     lambda s: s.get("provider", "none") != "none"),
    ("email", "smtp_host", "smtp.example.invalid", lambda s: s.get("provider") == "smtp"),
    ("monitoring", "self_hosted_endpoint", "monitoring.example.invalid",
     lambda s: s.get("provider") == "self-hosted"),
    ("tls", "cert_file", "prospect.invalid.crt", lambda s: s.get("mode") == "provided"),
    ("tls", "key_file", "prospect.invalid.key", lambda s: s.get("mode") == "provided"),
)


def prospect_data(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a profile as plain data) with the deployment-only gaps filled."""
    out = dict(data)
    for section, key, stand_in, needed in _STAND_INS:
        current = out.get(section)
        if isinstance(current, dict) and needed(current) and current.get(key) in (None, ""):
            out[section] = {**current, key: stand_in}
    ai = out.get("ai")
    if isinstance(ai, dict) and ai.get("provider", "disabled") == "disabled":
        out["ai"] = {k: v for k, v in ai.items() if k != "models"}
    return out
