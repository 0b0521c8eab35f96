#!/usr/bin/python3
"""Ansible module: where the host itself has to connect, read from its own configuration.

With the whole-host egress scope the output chain drops by default, so the
firewall needs the addresses of what the host genuinely uses: apt's proxy (or,
without one, its mirrors), the resolvers of /etc/resolv.conf, the users that
speak NTP, and any further names (the ACME directory) resolved as the host
resolves them. Read at deploy time, so a changed apt proxy or resolver is
picked up by the next deploy.
"""

from __future__ import annotations

import pwd
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: selfhost_egress_facts
short_description: apt proxy or mirrors, resolvers and NTP users of a Debian host
description:
  - Read-only; supports check mode.
  - Sets the fact C(selfhost_egress_host) with C(apt) (list of address, port, name:
    apt's configured proxy per scheme, else the hosts of its sources), C(resolvers)
    (nameserver addresses), C(ntp_users) (the NTP clients' users that exist) and
    C(names) (each of the option C(names) resolved to address, port, name).
options:
  names:
    {type: list, elements: dict, default: [], description: "Endpoints {host, port} to resolve."}
  resolv_conf:
    type: list
    elements: path
    default: [/etc/resolv.conf, /run/systemd/resolve/resolv.conf]
    description: Resolver files (with a local stub, its upstream file is read too).
  sources: {type: path, default: /etc/apt, description: apt's configuration directory.}
  ntp_users:
    type: list
    elements: str
    default: [systemd-timesync, _chrony, ntpsec, ntp]
    description: Users of NTP clients.
"""

DEFAULT_PORTS = {"http": 80, "https": 443}
# apt-config's dump: `Acquire::http::Proxy "http://10.0.0.1:3142/";`
_PROXY = re.compile(r'^Acquire::(https?)::Proxy "([^"]*)";$', re.MULTILINE)


def proxies(apt_config_dump: str) -> dict[str, str]:
    """The proxy URL apt uses for each scheme (``DIRECT`` and empty values mean none)."""
    out = {}
    for scheme, value in _PROXY.findall(apt_config_dump):
        if value and value.upper() != "DIRECT" and value.lower() != "false":
            out[scheme] = value
    return out


def source_uris(etc_apt: Path) -> list[str]:
    """Every URI of the one-line (``*.list``) and deb822 (``*.sources``) sources."""
    files = [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list"))]
    uris: list[str] = []
    for path in files:
        for line in path.read_text().splitlines() if path.is_file() else []:
            words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 2 and words[0] in ("deb", "deb-src"):
                uris.append(words[1])
    for path in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        for match in re.finditer(r"^URIs:(.*)$", path.read_text(), re.MULTILINE | re.IGNORECASE):
            uris += match.group(1).split()
    return uris


def apt_endpoints(apt_config_dump: str, uris: list[str]) -> list[tuple[str, int]]:
    """``(host, port)`` apt connects to: the proxy of each scheme, else each mirror."""
    proxy = proxies(apt_config_dump)
    out: dict[tuple[str, int], None] = {}
    for uri in uris:
        parts = urlsplit(uri)
        if parts.scheme not in DEFAULT_PORTS:
            continue  # file:, cdrom: and the like need no network
        target = urlsplit(proxy[parts.scheme]) if parts.scheme in proxy else parts
        if target.hostname:
            port = target.port or DEFAULT_PORTS.get(target.scheme, DEFAULT_PORTS[parts.scheme])
            out[(target.hostname, port)] = None
    return list(out)


def resolvers(texts: list[str]) -> list[str]:
    """Nameserver addresses of resolv.conf files, loopback (a local stub) left out."""
    out: dict[str, None] = {}
    for text in texts:
        for match in re.finditer(r"^\s*nameserver\s+(\S+)", text, re.MULTILINE):
            address = match.group(1).split("%", 1)[0]
            if not (address.startswith("127.") or address == "::1"):
                out[address] = None
    return list(out)


def resolve(host: str, port: int) -> list[dict[str, object]]:
    """Each address ``host`` resolves to (none when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    addresses = dict.fromkeys(str(info[4][0]) for info in infos)
    return [{"address": a, "port": port, "name": host} for a in sorted(addresses)]


def existing_users(names: list[str]) -> list[str]:
    out = []
    for name in names:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        out.append(name)
    return out


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "names": {"type": "list", "elements": "dict", "default": []},
            "resolv_conf": {"type": "list", "elements": "path",
                            "default": ["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"]},
            "sources": {"type": "path", "default": "/etc/apt"},
            "ntp_users": {"type": "list", "elements": "str",
                          "default": ["systemd-timesync", "_chrony", "ntpsec", "ntp"]},
        },
        supports_check_mode=True,
    )
    rc, dump, err = module.run_command(["apt-config", "dump"])
    if rc != 0:
        module.fail_json(msg=f"apt-config dump failed: {err or dump}")
    apt = [entry for host, port in apt_endpoints(dump, source_uris(Path(module.params["sources"])))
           for entry in resolve(host, port)]
    texts = [Path(p).read_text() for p in module.params["resolv_conf"] if Path(p).is_file()]
    names = [entry for item in module.params["names"]
             for entry in resolve(str(item["host"]), int(item["port"]))]
    module.exit_json(changed=False, ansible_facts={"selfhost_egress_host": {
        "apt": apt, "resolvers": resolvers(texts),
        "ntp_users": existing_users(module.params["ntp_users"]), "names": names,
    }})


if __name__ == "__main__":
    main()
