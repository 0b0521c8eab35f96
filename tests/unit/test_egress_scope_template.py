"""The firewall template for each egress scope: what the output chain lets out."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import pytest
from ansible.plugins.filter.core import FilterModule

from selfhost.paths import ANSIBLE_DIR, preset_path
from selfhost.plan import plan
from selfhost.profile_io import load_profile

TEMPLATE = ANSIBLE_DIR / "roles" / "egress" / "templates" / "nftables.conf.j2"
HOST_FACTS = {"apt": [{"address": "192.0.2.1", "port": 3142, "name": "192.0.2.1"}],
              "resolvers": ["192.0.2.53", "2001:db8::53"], "ntp_users": ["systemd-timesync"],
              "names": []}


def _render(scope: str) -> str:
    profile = load_profile(preset_path("us-openai")).model_copy(deep=True)
    profile.egress.scope = scope  # type: ignore[assignment]
    the_plan: dict[str, Any] = json.loads(plan(profile).to_json())
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                             extensions=["jinja2.ext.do"])
    env.filters.update(FilterModule().filters())
    return env.from_string(TEMPLATE.read_text()).render(
        ansible_managed="managed", selfhost_plan=the_plan,
        egress_plan_host=the_plan["hosts"][0], inventory_hostname=the_plan["hosts"][0]["name"],
        egress_proxy_port=3128, egress_nft_table="backend_chat", egress_ssh_port=22,
        egress_log_rate="10/second", egress_direct=[],
        egress_app_user=the_plan["layout"]["app_user"],
        ansible_facts={"selfhost_egress_host": HOST_FACTS})


def _output_chain(text: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines()]
    start = lines.index("chain output {")
    return [line for line in lines[start:lines.index("}", start)]
            if line and not line.startswith("#")]


def test_scope_app_leaves_other_users_alone() -> None:
    chain = _output_chain(_render("app"))
    assert (chain[1], chain[-1]) == ("type filter hook output priority filter; policy accept;",
                                     "tcp sport 22 accept")


def test_scope_host_drops_every_user_but_for_the_hosts_own_needs() -> None:
    chain = _output_chain(_render("host"))
    assert chain[1:4] == ["type filter hook output priority filter; policy drop;",
                          "ct state established,related accept",
                          'meta skuid "backendchat" jump app_egress']
    assert {
        'meta skuid "proxy" tcp dport { 443, 587 } accept comment "egress proxy upstream"',
        'meta skuid { "root", "_apt" } ip daddr 192.0.2.1 tcp dport 3142 accept '
        'comment "apt 192.0.2.1"',
        "meta skuid 0-999 ip daddr 192.0.2.53 meta l4proto { tcp, udp } th dport 53 accept "
        'comment "DNS resolver"',
        "meta skuid 0-999 ip6 daddr 2001:db8::53 meta l4proto { tcp, udp } th dport 53 accept "
        'comment "DNS resolver"',
        'meta skuid { "systemd-timesync" } udp dport 123 accept comment "NTP"',
    } <= set(chain)
    assert chain[-2:] == ['limit rate 10/second log prefix "backend-chat output drop: "',
                          'counter comment "output dropped"']


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft is not installed")
@pytest.mark.parametrize("scope", ["app", "host"])
def test_the_rules_load(scope: str, tmp_path: Path) -> None:
    rules = tmp_path / "nftables.conf"
    # Users nft resolves by name at load time: the controller may lack Debian's.
    text = _render(scope).replace('"_apt"', '"root"').replace('"proxy"', '"root"')
    rules.write_text(text.replace('"systemd-timesync"', '"root"').replace(
        '"backendchat"', '"root"'))
    done = subprocess.run(["nft", "-c", "-f", str(rules)], capture_output=True, text=True,
                          check=False)
    assert (done.returncode, done.stderr) == (0, "")
