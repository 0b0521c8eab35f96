"""Where a Profile's hosts are, and how ssh reaches them.

``deploy`` and ``verify`` both call :func:`resolve_target`, so verify checks the
Plan that was deployed (same sandbox mapping, same inventory), not a near copy
of it.
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfhost import sandbox as sandbox_mod
from selfhost.errors import InvalidInput
from selfhost.models import Profile
from selfhost.plan import Endpoint, Plan, plan
from selfhost.profile_io import load_profile
from selfhost.targets import inventory

if TYPE_CHECKING:
    from selfhost.sandbox import Sandbox

#: the sandbox host's apt cache: open, reachable from every guest, never a third party
SANDBOX_APT_PORT = 3142

#: RFC 5737 documentation networks: the presets' placeholder addresses. No real
#: host has one, so connecting there would only send traffic somewhere unknown.
_DOCUMENTATION_NETS = tuple(ipaddress.ip_network(n) for n in (
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"))


@dataclass(frozen=True)
class Target:
    """The profile as deployed (addresses moved onto sandbox guests) and its inventory."""

    profile: Profile
    plan: Plan
    inventory: dict[str, Any]
    #: the sandbox the hosts are guests of, if they are
    box: Sandbox | None = None


@dataclass(frozen=True)
class SshTarget:
    """One Plan host as ssh reaches it."""

    name: str
    address: str
    port: int
    user: str
    identity_file: str | None
    ssh_args: tuple[str, ...]
    #: run the checks through sudo (the ssh user is not root)
    sudo: bool


@dataclass(frozen=True)
class Deployment:
    profile_path: Path
    profile: Profile
    plan: Plan
    targets: list[SshTarget]
    #: per app host, an address it can reach but its app user must not
    direct_targets: dict[str, Endpoint]
    #: where the hosts came from, for the report ("sandbox ci", "inventory hosts.yml")
    source: str


def _refuse_placeholders(target: Target, source: Path | None) -> Target:
    names = [h.name for h in target.profile.hosts.app]
    paths = {h.name: f"hosts.app.{i}.address" for i, h in enumerate(target.profile.hosts.app)}
    for role in ("database", "cache"):
        host = getattr(target.profile.hosts, role)
        if host is not None:
            paths[host.name] = f"hosts.{role}.address"
            names.append(host.name)
    for name in names:
        address = str(target.inventory["all"]["hosts"][name].get("ansible_host", ""))
        try:
            placeholder = any(ipaddress.ip_address(address) in net
                              for net in _DOCUMENTATION_NETS)
        except ValueError:
            continue
        if placeholder:
            where = f"{source}: " if source else ""
            raise InvalidInput(
                f"{where}{paths[name]}: {address} is a documentation address (RFC 5737), a "
                f"placeholder of the presets, not host {name}'s real address (set it: "
                f"`selfhost init --force --set {paths[name]}=ADDRESS`, give --inventory "
                "FILE, or deploy onto a sandbox with --sandbox NAME)")
    return target


def _one_source(inventory_file: Path | None, sandbox: str | None) -> None:
    if inventory_file is not None and sandbox is not None:
        raise InvalidInput("--inventory and --sandbox both say where the hosts are; give one")


def resolve_target(profile: Profile, *, inventory_file: Path | None = None,
                   sandbox: str | None = None, source: Path | None = None) -> Target:
    """Where the Plan's hosts really are (the sandbox's guests, the inventory file's
    hosts, else the profile's addresses); never a preset's placeholder address.
    ``source`` is the profile's file, named in errors."""
    _one_source(inventory_file, sandbox)
    return _refuse_placeholders(_resolve_target(profile, inventory_file, sandbox), source)


def _resolve_target(profile: Profile, inventory_file: Path | None,
                    sandbox: str | None) -> Target:
    if sandbox is not None:
        box = sandbox_mod.load(sandbox)
        effective = inventory.map_onto(profile, [g.address for g in box.guests],
                                       sandbox=box.name)
        the_plan = plan(effective)
        connection = inventory.sandbox_connection(the_plan, [g.name for g in box.guests],
                                                  box.inventory)
        return Target(effective, the_plan, inventory.build(the_plan, connection), box)
    the_plan = plan(profile)
    if inventory_file is not None:
        return Target(profile, the_plan, inventory.from_file(the_plan, inventory_file))
    return Target(profile, the_plan, inventory.build(the_plan))


def _ssh_target(name: str, hostvars: dict[str, Any]) -> SshTarget:
    user = str(hostvars.get("ansible_user", "root"))
    key = hostvars.get("ansible_ssh_private_key_file") or hostvars.get(
        "ansible_private_key_file")
    args = shlex.split(str(hostvars.get("ansible_ssh_common_args", "")))
    args += shlex.split(str(hostvars.get("ansible_ssh_extra_args", "")))
    return SshTarget(name=name, address=str(hostvars.get("ansible_host", name)),
                     port=int(hostvars.get("ansible_port", 22)), user=user,
                     identity_file=str(key) if key else None, ssh_args=tuple(args),
                     sudo=user != "root" and bool(hostvars.get("ansible_become", True)))


def _direct_targets(the_plan: Plan, extra: list[Endpoint]) -> dict[str, Endpoint]:
    """For each app host: another host of the deployment (its ssh port), else ``extra``."""
    out: dict[str, Endpoint] = {}
    for host in the_plan.hosts_with("app"):
        others = [Endpoint(host=h.address, port=h.ssh_port) for h in the_plan.hosts
                  if h.address != host.address]
        choice = others[:1] or extra[:1]
        if choice:
            out[host.name] = choice[0]
    return out


def resolve(profile_path: Path, *, inventory: Path | None = None,
            sandbox: str | None = None) -> Deployment:
    """The deployment ``profile_path`` describes, on the hosts the options name, as
    ssh reaches them."""
    _one_source(inventory, sandbox)
    target = resolve_target(load_profile(profile_path), inventory_file=inventory,
                            sandbox=sandbox, source=profile_path)
    hostvars: dict[str, dict[str, Any]] = target.inventory["all"]["hosts"]
    targets = [_ssh_target(h.name, hostvars[h.name]) for h in target.plan.hosts]
    extra: list[Endpoint] = []
    source = f"inventory {inventory}" if inventory else "the profile's addresses"
    if target.box is not None:
        box = target.box
        used = {h.address for h in target.plan.hosts}
        # A spare guest if there is one, else the sandbox host's apt cache: both are
        # reachable from the guests and open, so only the firewall can stop the app user.
        extra = [Endpoint(host=g.address, port=22) for g in box.guests
                 if g.address not in used]
        extra.append(Endpoint(host=box.bridge_address, port=SANDBOX_APT_PORT))
        source = f"sandbox {box.name}"
    return Deployment(profile_path=profile_path, profile=target.profile, plan=target.plan,
                      targets=targets, direct_targets=_direct_targets(target.plan, extra),
                      source=source)
