"""Egress scope host from the attacker's side, on real Debian 12 and 13 guests.

The same deployment as test_egress (us-openai, database and cache external by
name) with ``egress.scope: host``, deployed once per release: every user's
outbound connection is dropped but for the host's own allowances, while apt,
DNS for system users and the app's way out through the proxy keep working.
Every bystander is an address on the sandbox's bridge that the test listens on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_support import DIRECT_CONNECT, RELEASES, assert_nothing_changed, https_get_on_host
from test_egress import (
    DNS_QUERY,
    LISTED_ADDRESS,
    LISTED_NAME,
    Host,
    connect_request,
    deploy_fenced_guest,
    listening,
    proxy_status,
    redeploy,
)

from conftest import SandboxFactory
from selfhost.verify import verify

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module", params=RELEASES)
def host(request: pytest.FixtureRequest, sandbox_factory: SandboxFactory,
         tmp_path_factory: pytest.TempPathFactory) -> Host:
    release: str = request.param
    return deploy_fenced_guest(sandbox_factory, tmp_path_factory.mktemp(f"scope-{release}"),
                               f"s{release[:2]}-scope", release, "egress.scope=host")


@pytest.mark.parametrize("user", ["nobody", "root"])
def test_no_user_reaches_a_bystander(host: Host, user: str) -> None:
    with listening(host.bridge) as (port, bystander):
        answer = host.as_user(user, DIRECT_CONNECT, host.bridge, str(port))
    assert (answer.split()[0], bystander.seen) == ("blocked", [])


def test_the_drop_is_counted(host: Host) -> None:
    def dropped() -> int:
        rules = host.run("nft", "list", "chain", "inet", "backend_chat", "output")
        line = next(line for line in rules.splitlines() if 'comment "output dropped"' in line)
        return int(line.split("packets ", 1)[1].split()[0])

    before = dropped()
    with listening(host.bridge) as (port, _):
        host.as_user("nobody", DIRECT_CONNECT, host.bridge, str(port))
    assert dropped() > before


def test_apt_still_works_through_the_configured_proxy(host: Host) -> None:
    out = host.run("apt-get", "update", "-o", "APT::Update::Error-Mode=any", timeout=300)
    assert "Err:" not in out


def test_dns_reaches_the_resolver_from_a_system_user_only(host: Host) -> None:
    names = {user: f"{user.strip('_-')}-scope-probe.example.org" for user in ("root", "nobody")}
    with listening(host.bridge, 53, udp=True) as (_, resolver):
        for user, name in names.items():
            host.as_user(user, DNS_QUERY, name, host.bridge)
        host.as_user(host.app_user, DNS_QUERY, "app-scope-probe.example.org", host.bridge)
    arrived = {user: any(name.split(".")[0].encode() in p for p in resolver.payloads)
               for user, name in [*names.items(), ("app", "app-scope-probe.example.org")]}
    assert arrived == {"root": True, "nobody": False, "app": False}


@pytest.fixture
def listed_name_on_the_bridge(host: Host) -> Iterator[None]:
    """The listed name points at the bridge, where the test listens on its port."""
    host.run("sh", "-c", f"sed -i 's/^{LISTED_ADDRESS} {LISTED_NAME}$/{host.bridge} "
             f"{LISTED_NAME}/' /etc/hosts && systemctl reload squid.service")
    try:
        yield
    finally:
        host.run("sh", "-c", f"sed -i 's/^{host.bridge} {LISTED_NAME}$/{LISTED_ADDRESS} "
                 f"{LISTED_NAME}/' /etc/hosts && systemctl reload squid.service")


@pytest.mark.usefixtures("listed_name_on_the_bridge")
def test_the_proxy_still_reaches_a_listed_name(host: Host) -> None:
    with listening(host.bridge, 443) as (_, upstream):
        status = proxy_status(host, connect_request(f"{LISTED_NAME}:443"))
        # Contrast: the same address and port, directly as root, is dropped.
        direct = host.as_user("root", DIRECT_CONNECT, host.bridge, "443")
    assert (status, len(upstream.seen), direct.split()[0]) == (200, 1, "blocked")


def test_the_app_still_answers_behind_nginx(host: Host) -> None:
    status, body = https_get_on_host(host.deployment, host.deployment.plan.hosts[0].name,
                                     "/healthz")
    # The external database and cache are unreachable by design (documentation
    # addresses): the app runs and reports each of its dependencies.
    checks = (body or {}).get("checks", {})
    assert (status, (body or {}).get("status"), {"ai", "cache", "database"} <= set(checks)) == (
        503, "degraded", True)


def test_verify_checks_the_scope_and_fails_when_output_is_opened(host: Host) -> None:
    def scope_checks() -> dict[str, bool]:
        result = verify(host.deployment.profile_path, sandbox=host.deployment.box.name)
        return {r.check.id: r.passed for r in result.results
                if r.check.id.startswith("egress.")}

    intact = scope_checks()
    host.run("nft", "add", "rule", "inet", "backend_chat", "output", "accept")
    try:
        appended = scope_checks()["egress.scope"]
    finally:
        host.run("systemctl", "reload", "nftables.service")
    host.run("nft", "chain", "inet", "backend_chat", "output",
             "{ policy accept; }")
    try:
        opened = scope_checks()["egress.scope"]
    finally:
        host.run("systemctl", "reload", "nftables.service")
    assert (intact, appended, opened) == (dict.fromkeys(intact, True), False, False)
    assert "egress.scope" in intact


def test_redeploy_changes_nothing(host: Host, tmp_path: Path) -> None:
    assert_nothing_changed(redeploy(host, tmp_path))
