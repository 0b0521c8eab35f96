"""What to collect from each host: the spec :mod:`remote_facts` runs with. Pure.

The spec is derived from the host's checks, so a host is asked only about the
components the Plan puts on it. The paths below are where the roles put things
(see ``ansible/roles/*/defaults/main.yml``); they are the one place verify
knows them.
"""

from __future__ import annotations

import base64
import json
from importlib.resources import files
from typing import Any

from selfhost.plan import CA_CERT_PATH, Plan, PlanHost
from selfhost.verify.checks import DEPLOYMENT_RECORD, Check

REDIS_CONF = "/etc/redis/redis.conf"
PROXY_ALLOWLIST = "/etc/squid/squid.conf"
PROXY_LOG = "/var/log/squid/access.log"
PROXY_UNIT = "squid.service"
NFTABLES_UNIT = "nftables.service"
REDIS_UNIT = "redis-server.service"
UNKNOWN_HOST = "unknown.selfhost-verify.invalid"
UNIT_PROPS = ["ActiveState", "SubState", "User"]


def host_spec(plan: Plan, host: PlanHost, checks: list[Check]) -> dict[str, Any]:
    """The remote spec for ``host``: one section per kind of fact its checks read."""
    ids = {c.id for c in checks if c.host == host.name}
    by_id = {c.id: c for c in checks if c.host == host.name}
    spec: dict[str, Any] = {
        "listeners": None,
        "record": DEPLOYMENT_RECORD,
        "nftables": None,
        "container": None,
        "sysctl": sorted(by_id["host.sysctl"].params["sysctl"]) if "host.sysctl" in ids else [],
    }
    unit_props: dict[str, list[str]] = {NFTABLES_UNIT: UNIT_PROPS}
    stat_paths: list[str] = []
    if "host.secret_files" in ids:
        stat_paths += by_id["host.secret_files"].params["files"]
    procs: list[str] = []
    if "postgresql" in host.components:
        spec["postgresql"] = None
    if "backup" in host.components:
        unit_props[by_id["backup.timer"].params["unit"]] = [*UNIT_PROPS, "UnitFileState"]
        stat_paths.append(by_id["backup.directory"].params["path"])
    if "redis" in host.components:
        spec["redis_server"] = {"conf": REDIS_CONF, "ca": CA_CERT_PATH,
                                **{k: by_id["redis.noauth_ping"].params[k]
                                   for k in ("address", "port", "tls")}}
        unit_props[REDIS_UNIT] = UNIT_PROPS
        procs.append("redis-server")
    if "redis.app_user_config_refused" in ids:
        spec["redis_app"] = {"env_file": plan.app.env_file, "ca": CA_CERT_PATH}
    if "app" in host.components:
        unit = by_id["app.unit"].params
        unit_props[unit["unit"]] = [*UNIT_PROPS, *unit["hardening"]]
        unit_props[PROXY_UNIT] = UNIT_PROPS
        stat_paths.append(plan.app.env_file)
        spec["app"] = {"env_file": plan.app.env_file, "port": plan.app.port,
                       "public": sorted(by_id["app.env_keys"].params["values"]),
                       "url_keys": sorted(by_id["app.env_keys"].params["url_keys"])}
        spec["egress"] = _egress_spec(plan, [c for c in checks if c.host == host.name])
    if "nginx" in host.components:
        spec["nginx"] = {"addresses": ["127.0.0.1", host.address], "domain": plan.tls.domain,
                         "ca": CA_CERT_PATH, "unknown_host": UNKNOWN_HOST}
        procs.append("nginx: worker process")
    spec["units"] = unit_props
    spec["files"] = sorted(set(stat_paths))
    spec["processes"] = procs
    return spec


def _egress_spec(plan: Plan, checks: list[Check]) -> dict[str, Any]:
    destinations = sorted({c.params["destination"] for c in checks
                           if "destination" in c.params})
    direct = next((c.params["target"] for c in checks if c.id == "egress.direct_dropped"), None)
    return {"allowlist_file": PROXY_ALLOWLIST, "log_file": PROXY_LOG,
            "destinations": destinations, "probe_app": plan.app.release is None,
            "app_port": plan.app.port, "proxy_port": plan.proxy_port,
            "direct": direct, "user": plan.app.user}


def remote_command(spec: dict[str, Any]) -> str:
    """The shell command that runs :mod:`remote_facts` with ``spec`` on a host.

    Script and spec travel base64-encoded as arguments, so no quoting can break
    them; neither holds a secret.
    """
    source = files("selfhost.verify").joinpath("remote_facts.py").read_bytes()
    script = base64.b64encode(source).decode()
    payload = base64.b64encode(json.dumps(spec).encode()).decode()
    loader = ("import base64,sys;exec(compile(base64.b64decode(sys.argv[1]),"
              "'remote_facts','exec'),{'__name__':'__main__'})")
    return f"python3 -c \"{loader}\" {script} {payload}"
