#!/usr/bin/python3
"""Ansible module: the few host facts the roles need, in one round trip.

Ansible's own fact gathering (even the network subset) and one apt call per
role cost most of a no-op deploy; the roles need only three things: whether the
host is a container, which Debian packages are installed (so a role's apt task
runs only when one of its packages is missing) and whether the host has IPv6.
"""

from __future__ import annotations

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: selfhost_host_facts
short_description: Container, installed packages and IPv6 of a Debian host
description:
  - Read-only; supports check mode.
  - Sets the facts C(selfhost_container) (bool), C(selfhost_installed_packages)
    (sorted list of the names of installed Debian packages) and C(selfhost_ipv6)
    (bool, an IPv6 address other than loopback is configured).
options:
  if_inet6: {type: path, default: /proc/net/if_inet6, description: The kernel's IPv6 address table.}
"""

# dpkg-query's status word of a package that is fully installed; "config-files"
# (removed, configuration kept) and half-installed states need apt to run again.
INSTALLED = "installed"
LOOPBACK_V6 = "0" * 31 + "1"


def installed_packages(dpkg_query_output: str) -> list[str]:
    """Names of the installed packages in ``dpkg-query --show`` output made with
    the format ``${db:Status-Status}\\t${Package}\\n``."""
    names = set()
    for line in dpkg_query_output.splitlines():
        status, _, name = line.partition("\t")
        if status == INSTALLED and name:
            names.add(name)
    return sorted(names)


def has_ipv6(if_inet6: str) -> bool:
    """Whether the kernel's IPv6 address table lists an address other than ``::1``
    (the file is absent or empty when IPv6 is disabled)."""
    return any(fields[0] != LOOPBACK_V6
               for fields in (line.split() for line in if_inet6.splitlines()) if fields)


def main() -> None:
    module = AnsibleModule(
        argument_spec={"if_inet6": {"type": "path", "default": "/proc/net/if_inet6"}},
        supports_check_mode=True,
    )
    # rc 0: a container; 1: none detected; anything else is a failure to detect.
    virt_rc, virt_out, virt_err = module.run_command(["systemd-detect-virt", "--container"])
    if virt_rc not in (0, 1):
        module.fail_json(msg=f"systemd-detect-virt --container failed: {virt_err or virt_out}")
    dpkg_rc, dpkg_out, dpkg_err = module.run_command(
        ["dpkg-query", "--show", "--showformat=${db:Status-Status}\t${Package}\n"])
    if dpkg_rc != 0:
        module.fail_json(msg=f"dpkg-query --show failed: {dpkg_err or dpkg_out}")
    table = Path(module.params["if_inet6"])
    module.exit_json(changed=False, ansible_facts={
        "selfhost_container": virt_rc == 0,
        "selfhost_installed_packages": installed_packages(dpkg_out),
        "selfhost_ipv6": has_ipv6(table.read_text() if table.exists() else ""),
    })


if __name__ == "__main__":
    main()
