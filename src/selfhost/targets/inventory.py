"""The Ansible inventory for a Plan, and where its hosts' addresses come from.

Hosts are named as in the Plan and grouped as the playbook expects: ``app``,
``database`` and ``cache`` hold the hosts the Plan puts those components on.
Connection details come from one of three places:

* the Plan itself (each host's address and ssh port, the profile's ssh user);
* ``--inventory FILE``: an Ansible YAML inventory whose host names must be the
  Plan's, whose host vars (address, port, user, keys) are used as given;
* ``--sandbox NAME``: the sandbox's guests, mapped onto the Plan's hosts in
  order, reached with the sandbox's key and strict known_hosts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from selfhost import inputs
from selfhost.errors import InvalidInput
from selfhost.models import Host, Profile, all_hosts
from selfhost.plan import Plan

#: inventory group -> the Plan component that puts a host in it
GROUPS = {"app": "app", "database": "postgresql", "backup": "backup", "cache": "redis"}
#: host vars taken from a sandbox's inventory for each guest
_SANDBOX_VARS = ("ansible_ssh_private_key_file", "ansible_ssh_common_args",
                 "ansible_python_interpreter")

HostVars = dict[str, Any]


def build(plan: Plan, connection: Mapping[str, HostVars] | None = None) -> dict[str, Any]:
    """The inventory dict for ``plan``; ``connection`` overrides host vars by host name."""
    hosts: dict[str, HostVars] = {}
    for host in plan.hosts:
        hostvars: HostVars = {
            "ansible_host": host.address,
            "ansible_port": host.ssh_port,
            "ansible_user": plan.ssh_user,
            "ansible_become": plan.become and plan.ssh_user != "root",
        }
        hostvars.update((connection or {}).get(host.name, {}))
        hosts[host.name] = hostvars
    children: dict[str, Any] = {
        group: {"hosts": {h.name: {} for h in plan.hosts if component in h.components}}
        for group, component in GROUPS.items()
    }
    return {"all": {"hosts": hosts, "children": children}}


# -- --inventory FILE --------------------------------------------------------------

def _walk(group: Mapping[str, Any], inherited: HostVars, out: dict[str, HostVars],
          source: Path) -> None:
    if not isinstance(group, Mapping):
        return
    group_vars = {**inherited, **(group.get("vars") or {})}
    for name, hostvars in (group.get("hosts") or {}).items():
        if hostvars is not None and not isinstance(hostvars, Mapping):
            raise InvalidInput(f"{source}: host {name!r} has vars that are not a mapping "
                               "(write `NAME: {ansible_host: ADDRESS}`)")
        out[str(name)] = {**out.get(str(name), {}), **group_vars, **(hostvars or {})}
    for child in (group.get("children") or {}).values():
        _walk(child or {}, group_vars, out, source)


def read_hosts(path: Path) -> dict[str, HostVars]:
    """Every host of a YAML inventory with its vars (group vars applied, host vars win)."""
    try:
        data = YAML(typ="safe").load(inputs.read_text(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the inventory {path} ({inputs.reason(exc)}) "
                           "(check --inventory)") from None
    except YAMLError as exc:
        raise InvalidInput(f"{path}: not valid YAML ({exc}); --inventory takes an "
                           "Ansible YAML inventory") from None
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{path}: not an Ansible YAML inventory (expected a mapping "
                           "starting with `all:`)")
    out: dict[str, HostVars] = {}
    for group in data.values():
        _walk(group or {}, {}, out, path)
    return out


def from_file(plan: Plan, path: Path) -> dict[str, Any]:
    """The Plan's inventory with each host's connection vars from ``path``."""
    found = read_hosts(path)
    wanted = [h.name for h in plan.hosts]
    missing = [n for n in wanted if n not in found]
    extra = sorted(set(found) - set(wanted))
    problems = []
    if missing:
        problems.append(f"missing the profile's host(s) {', '.join(missing)}")
    if extra:
        problems.append(f"has host(s) the profile does not name: {', '.join(extra)}")
    if problems:
        raise InvalidInput(f"{path}: the inventory's host names must be the profile's "
                           f"({', '.join(wanted)}); it is {'; and '.join(problems)} "
                           "(rename the hosts in the inventory or in the profile)")
    # Groups are the Plan's to decide; only connection details come from the file.
    return build(plan, {n: dict(found[n]) for n in wanted})


# -- --sandbox NAME ----------------------------------------------------------------

def map_onto(profile: Profile, addresses: list[str], *, sandbox: str) -> Profile:
    """``profile`` with its hosts' addresses replaced, in Plan host order, by ``addresses``.

    The result is validated again, so the Plan computed from it obeys every rule.
    """
    hosts = all_hosts(profile)
    if len(addresses) < len(hosts):
        raise InvalidInput(
            f"sandbox {sandbox!r} has {len(addresses)} guest(s) but the profile has "
            f"{len(hosts)} host(s) (run `selfhost sandbox up --name {sandbox} --hosts "
            f"{len(hosts)}`)")
    by_name = {h.name: address for h, address in zip(hosts, addresses, strict=False)}

    def moved(host: Host | None) -> Host | None:
        if host is None:
            return None
        return host.model_copy(update={"address": by_name[host.name], "ssh_port": 22})

    new_hosts = profile.hosts.model_copy(update={
        "app": [moved(h) for h in profile.hosts.app],
        "database": moved(profile.hosts.database),
        "cache": moved(profile.hosts.cache),
        "ssh_user": "root",
    })
    data = profile.model_copy(update={"hosts": new_hosts}).model_dump(mode="json")
    return Profile.model_validate(data)


def sandbox_connection(plan: Plan, guest_names: list[str], sandbox_inventory: Path
                       ) -> dict[str, HostVars]:
    """Connection vars for each Plan host from the sandbox guest it was mapped onto."""
    guests = read_hosts(sandbox_inventory)
    out: dict[str, HostVars] = {}
    for host, guest in zip(plan.hosts, guest_names, strict=False):
        if guest not in guests:
            raise InvalidInput(f"{sandbox_inventory} has no guest {guest!r} (run `selfhost "
                               "sandbox up` again to rewrite it)")
        out[host.name] = {k: guests[guest][k] for k in _SANDBOX_VARS if k in guests[guest]}
        out[host.name]["ansible_user"] = "root"
    return out
