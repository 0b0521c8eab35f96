"""verify takes every host-side path, unit and user from the Plan's layout."""

from __future__ import annotations

import json

from selfhost.layout import HostLayout
from selfhost.paths import preset_path
from selfhost.plan import Endpoint, Plan, plan
from selfhost.profile_io import load_profile
from selfhost.verify.components import generate, host_spec

MOVED = HostLayout(
    ca_cert="/srv/bc/ca.crt", tls_key="/srv/bc/tls/server.key",
    deployment_record="/srv/bc/deployment.json", app_user="chatapp",
    app_unit="chat-app.service", app_env_file="/srv/bc/app.env",
    backup_key="/srv/bc/backup.key", backup_timer="chat-backup.timer",
    nginx_tls_key="/srv/nginx/server.key", redis_config="/srv/redis/redis.conf",
    redis_tls_key="/srv/redis/server.key", redis_unit="valkey.service",
    proxy_config="/srv/squid/squid.conf", proxy_log="/srv/squid/access.log",
    nftables_unit="firewall.service")


def _moved(preset: str) -> Plan:
    return plan(load_profile(preset_path(preset))).model_copy(update={"layout": MOVED})


def _everything(p: Plan) -> str:
    """Every check text and every host's collection spec, as one text."""
    checks = generate(p, {h.name: Endpoint(host="10.0.0.9", port=22)
                          for h in p.hosts_with("app")})
    texts = [f"{c.description} {c.expected} {c.fix} {c.params}" for c in checks]
    specs = [json.dumps(host_spec(p, h)) for h in p.hosts]
    return "\n".join(texts + specs)


def test_every_layout_value_verify_reads_comes_from_the_plan() -> None:
    text = _everything(_moved("us-openai")) + _everything(_moved("split"))
    wanted = ["ca_cert", "deployment_record", "app_user", "app_unit", "app_env_file",
              "backup_key", "backup_timer", "nginx_tls_key", "tls_key", "redis_config",
              "redis_tls_key", "redis_unit", "proxy_config", "proxy_log", "nftables_unit"]
    assert [f for f in wanted if getattr(MOVED, f) not in text] == []


def test_no_default_path_is_left_once_the_layout_moves() -> None:
    text = _everything(_moved("us-openai")) + _everything(_moved("split"))
    defaults = HostLayout()
    # (ca_cert is left out: the Plan's own DATABASE_URL names it, derived by plan.py)
    fields = ["deployment_record", "app_unit", "app_env_file", "backup_key",
              "backup_timer", "nginx_tls_key", "redis_config", "redis_tls_key", "redis_unit",
              "proxy_config", "proxy_log", "nftables_unit"]
    assert [f for f in fields if getattr(defaults, f) in text] == []
