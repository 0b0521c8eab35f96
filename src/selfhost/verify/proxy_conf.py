"""The allowlist the egress proxy really enforces, read from its squid.conf. Pure.

Squid applies ``http_access`` rules in order and stops at the first match, so
the allowlist is what the ``allow`` rules before the first unconditional
``deny all`` admit: each rule's ``dstdomain`` (names) and ``dst`` (addresses)
ACLs crossed with its ``port`` ACLs, their flags such as ``-n`` aside. A rule
without either admits any host (``*``); one without a
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
            # Flags (``-n``: no lookups, ``-i``) come before the values.
            kind, values = words[2], [w for w in words[3:] if not w.startswith("-")]
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
                if kind in ("dstdomain", "dst"):
                    hosts += values
                elif kind == "port":
                    ports += values
            for host in hosts or [ANY]:
                for port in ports or [ANY]:
                    admitted.add(f"{host.lower()}:{port}")
    return sorted(admitted)
