"""Which hosts verify looks at, and how it reaches them.

The deployment is resolved exactly as ``selfhost deploy`` resolves it (same
profile loading, same sandbox mapping, same inventory), so verify checks the
Plan that was deployed, not a near copy of it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfhost import sandbox as sandbox_mod
from selfhost.deploy.service import DeployOptions, resolve_target
from selfhost.errors import InvalidInput
from selfhost.models import Profile
from selfhost.plan import Endpoint, Plan
from selfhost.profile_io import load_profile

#: the sandbox host's apt cache: open, reachable from every guest, never a third party
SANDBOX_APT_PORT = 3142


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


def _direct_targets(plan: Plan, extra: list[Endpoint]) -> dict[str, Endpoint]:
    """For each app host: another host of the deployment (its ssh port), else ``extra``."""
    out: dict[str, Endpoint] = {}
    for host in plan.hosts_with("app"):
        others = [Endpoint(host=h.address, port=h.ssh_port) for h in plan.hosts
                  if h.address != host.address]
        choice = others[:1] or extra[:1]
        if choice:
            out[host.name] = choice[0]
    return out


def resolve(profile_path: Path, *, inventory: Path | None = None,
            sandbox: str | None = None) -> Deployment:
    """The deployment ``profile_path`` describes, on the hosts the options name."""
    if inventory is not None and sandbox is not None:
        raise InvalidInput("--inventory and --sandbox both say where the hosts are; give one")
    profile = load_profile(profile_path)
    target = resolve_target(profile, DeployOptions(inventory=inventory, sandbox=sandbox),
                            profile_path)
    hostvars: dict[str, dict[str, Any]] = target.inventory["all"]["hosts"]
    targets = [_ssh_target(h.name, hostvars[h.name]) for h in target.plan.hosts]
    extra: list[Endpoint] = []
    source = f"inventory {inventory}" if inventory else "the profile's addresses"
    if sandbox is not None:
        box = sandbox_mod.load(sandbox)
        used = {h.address for h in target.plan.hosts}
        # A spare guest if there is one, else the sandbox host's apt cache: both are
        # reachable from the guests and open, so only the firewall can stop the app user.
        extra = [Endpoint(host=g.address, port=22) for g in box.guests
                 if g.address not in used]
        extra.append(Endpoint(host=box.bridge_address, port=SANDBOX_APT_PORT))
        source = f"sandbox {sandbox}"
    return Deployment(profile_path=profile_path, profile=target.profile, plan=target.plan,
                      targets=targets, direct_targets=_direct_targets(target.plan, extra),
                      source=source)
