"""What a support bundle asks of each host, and asking it: one ssh round trip per host.

The spec comes from the Plan and its layout (the deployment's units and
files, the secret files never to open); :mod:`selfhost.bundle.remote` runs it
on the host and answers one JSON object, kept in memory until it is redacted.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from selfhost.plan import Plan, PlanHost
from selfhost.release import MANIFEST
from selfhost.targets import SshTarget
from selfhost.targets.ssh import ask_json
from selfhost.verify import components

#: Debian's unit directory, where the roles install the deployment's own units
UNIT_DIR = "/etc/systemd/system"
#: Debian's unit names of the packaged servers the layout does not rename
_PACKAGED_UNITS = {"nginx": ["nginx.service"], "postgresql": ["postgresql@*.service"]}
#: PostgreSQL's configuration as Debian lays it out (any version, the main cluster)
_PG_CONFIG = ("/etc/postgresql/*/main/postgresql.conf", "/etc/postgresql/*/main/pg_hba.conf",
              "/etc/postgresql/*/main/conf.d/*.conf")
#: collection on a host gives up after this long (journal reads are bounded there too)
HOST_TIMEOUT = 300


def units(plan: Plan, host: PlanHost) -> list[str]:
    """The systemd units of the deployment on ``host``, by component."""
    layout = plan.layout
    by_component = {
        "common": [layout.nftables_unit],
        "egress": [layout.proxy_unit],
        "app": [layout.app_unit],
        "backup": [layout.backup_service, layout.backup_timer],
        "redis": [layout.redis_unit],
        **_PACKAGED_UNITS,
    }
    # The drift watch runs on every host, whatever its components.
    return [*(u for c in host.components for u in by_component.get(c, [])),
            layout.drift_service, layout.drift_timer]


def tags(unit_names: list[str]) -> list[str]:
    """Syslog identifiers the deployment's programs log under: each unit's name."""
    return list(dict.fromkeys(u.rsplit(".", 1)[0] for u in unit_names if "*" not in u))


def spec(plan: Plan, host: PlanHost, since: float) -> dict[str, Any]:
    """What to read on ``host``: journal since ``since`` (epoch seconds), configs, state."""
    layout = plan.layout
    unit_names = units(plan, host)
    own_units = [f"{UNIT_DIR}/{u}" for u in unit_names if "*" not in u]
    # The drift watch's latest result: what the host found between deploys.
    wanted = [layout.nft_config, layout.sysctl_file, layout.drift_status, *own_units]
    has = set(host.components)
    if "app" in has:
        wanted += [layout.app_hosts_file, layout.app_resolv_file]
    if "egress" in has:
        wanted.append(layout.proxy_config)
    if "nginx" in has:
        wanted.append(layout.nginx_site_file)
    if "redis" in has:
        # Not the ACL file: its password hashes are no value the redactor knows.
        wanted.append(layout.redis_config)
    if "backup" in has:
        wanted.append(layout.backup_script)
    return {
        "since": since,
        "units": unit_names,
        "tags": tags(unit_names),
        "files": wanted,
        "dirs": [layout.config_dir],
        "globs": [*(_PG_CONFIG if "postgresql" in has else ()),
                  *(f"{UNIT_DIR}/{u}.d/*.conf" for u in unit_names),
                  f"{layout.app_base_dir}/releases/*/{MANIFEST}"],
        "secret_files": list(components.context(plan, host).secret_files),
        "current_release": f"{layout.app_base_dir}/current",
        "proxy_log": layout.proxy_log if "egress" in has else "",
    }


@dataclass
class HostAnswer:
    """One host's answer, or why there is none."""

    host: str
    data: dict[str, Any] = field(default_factory=dict, repr=False)
    error: str | None = None


def script(host_spec: dict[str, Any]) -> str:
    source = files("selfhost.bundle").joinpath("remote.py").read_text(encoding="utf-8")
    return f"{source}\n\nmain(json.loads({json.dumps(json.dumps(host_spec))}))\n"


def ask(target: SshTarget, host_spec: dict[str, Any]) -> HostAnswer:
    """Run the collection on one host. The script goes on standard input, so
    neither it nor the spec shows in a process list."""
    data = ask_json(target, ["python3", "-"], timeout=HOST_TIMEOUT,
                    stdin=script(host_spec).encode())
    if isinstance(data, str):
        return HostAnswer(target.name, error=data)
    return HostAnswer(target.name, data=data)


def ask_all(targets: list[SshTarget], specs: dict[str, dict[str, Any]]
            ) -> dict[str, HostAnswer]:
    """:func:`ask` every host at once (hosts are independent)."""
    with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        answers = pool.map(lambda t: ask(t, specs[t.name]), targets)
        return {a.host: a for a in answers}
