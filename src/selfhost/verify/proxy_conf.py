"""The allowlist the egress proxy really enforces, read from its squid.conf. Pure.

Squid applies ``http_access`` rules in order and stops at the first match, so
the allowlist is what the ``allow`` rules before the first unconditional
``deny all`` admit: each rule's ``dstdomain`` ACLs crossed with its ``port``
ACLs. A rule without a ``dstdomain`` admits any host (``*``); one without a
``port`` admits any port. Reading the rules rather than trusting the comments
means a hand-added rule shows up as a difference.
"""

from __future__ import annotations

ANY = "*"


def allowlist(lines: list[str]) -> list[str]:
    """``host:port`` for every destination the proxy admits, sorted."""
    acls: dict[str, tuple[str, list[str]]] = {}
    admitted: set[str] = set()
    for raw in lines:
        words = raw.split("#", 1)[0].split()
        if len(words) >= 3 and words[0] == "acl":
            kind, values = words[2], words[3:]
            previous = acls.get(words[1], (kind, []))[1]
            acls[words[1]] = (kind, previous + values)
        elif len(words) >= 2 and words[0] == "http_access":
            action, names = words[1], words[2:]
            if action == "deny" and names == ["all"]:
                break
            if action != "allow":
                continue
            hosts, ports = [], []
            for name in names:
                kind, values = acls.get(name.lstrip("!"), ("unknown", []))
                if kind == "dstdomain":
                    hosts += values
                elif kind == "port":
                    ports += values
            for host in hosts or [ANY]:
                for port in ports or [ANY]:
                    admitted.add(f"{host.lower()}:{port}")
    return sorted(admitted)
