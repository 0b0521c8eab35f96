"""Reading what the egress proxy enforces (squid.conf) and what it did (its access log)."""

from __future__ import annotations

import pytest

from selfhost.verify import egress_log, proxy_conf

SQUID_CONF = """\
http_port 127.0.0.1:3128
acl from_localhost src 127.0.0.1/32 ::1
acl allow1_host dstdomain .ingest.us.sentry.io
acl allow1_port port 443
http_access allow from_localhost allow1_host allow1_port
acl allow2_host dstdomain api.openai.com
acl allow2_port port 443
http_access allow from_localhost allow2_host allow2_port
http_access deny all
access_log daemon:/var/log/squid/access.log squid
""".splitlines()


@pytest.mark.parametrize(("lines", "expected"), [
    (SQUID_CONF, [".ingest.us.sentry.io:443", "api.openai.com:443"]),
    (["acl from_localhost src 127.0.0.1/32", "http_access deny all"], []),
    # a rule added after `deny all` is never reached
    ([*SQUID_CONF, "acl late dstdomain evil.example", "http_access allow late"],
     [".ingest.us.sentry.io:443", "api.openai.com:443"]),
    # a hand-added rule before it is part of the allowlist
    (["acl extra dstdomain smtp.sendgrid.net", "acl extra_port port 587",
      "http_access allow extra extra_port", *SQUID_CONF],
     [".ingest.us.sentry.io:443", "api.openai.com:443", "smtp.sendgrid.net:587"]),
    # flags aside: names without lookups (-n), a listed address (dst -n)
    (["acl tunnel method CONNECT", "acl ip_literal dstdom_regex -n ^[0-9.]+$ :",
      "http_access deny !tunnel", "acl ip1 dst -n 192.0.2.5", "acl ip1_port port 587",
      "http_access allow ip_literal ip1 ip1_port", "http_access deny ip_literal",
      "acl a1 dstdomain -n api.openai.com", "acl a1_port port 443",
      "http_access allow a1 a1_port", "http_access deny all"],
     ["192.0.2.5:587", "api.openai.com:443"]),
    # a rule without a destination admits any host
    (["acl from_localhost src 127.0.0.1/32", "http_access allow from_localhost",
      "http_access deny all"], ["*:*"]),
])
def test_allowlist_is_what_the_rules_admit(lines: list[str], expected: list[str]) -> None:
    assert proxy_conf.allowlist(lines) == expected


LOG = [
    "1795766972.549  30065 127.0.0.1 NONE_NONE/500 0 CONNECT api.anthropic.com:443 - "
    "HIER_NONE/- -",
    "1795767032.992      0 127.0.0.1 TCP_DENIED/403 3470 CONNECT unlisted.invalid:443 - "
    "HIER_NONE/- text/html",
    "1795767040.100    120 127.0.0.1 TCP_TUNNEL/200 5120 CONNECT api.openai.com:443 - "
    "HIER_DIRECT/203.0.113.5 -",
    "1795767041.100    120 127.0.0.1 TCP_MISS/503 0 CONNECT smtp.sendgrid.net:587 - "
    "HIER_NONE/- -",
    "not a log line",
]


@pytest.mark.parametrize(("since", "destination", "contacted"), [
    (None, "api.openai.com:443", True),
    (None, "unlisted.invalid:443", False),
    (None, "api.anthropic.com:443", False),
    (None, "smtp.sendgrid.net:587", False),
    ("2026-11-27T08:10:00Z", "api.openai.com:443", True),
])
def test_log_says_which_destinations_were_contacted(since: str | None, destination: str,
                                                    contacted: bool) -> None:
    seen = egress_log.destinations(LOG, since)
    assert egress_log.contacted(seen[destination]) is contacted


def test_log_before_the_deploy_is_ignored() -> None:
    seen = egress_log.destinations(LOG, "2026-11-27T08:10:35Z")
    assert sorted(seen) == ["api.openai.com:443", "smtp.sendgrid.net:587"]


@pytest.mark.parametrize(("destination", "listed"), [
    ("o123.ingest.us.sentry.io:443", True),
    ("ingest.us.sentry.io:443", True),
    ("ingest.us.sentry.io:80", False),
    ("api.openai.com:443", True),
    ("evil-api.openai.com:443", False),
])
def test_on_list_follows_squid_dstdomain(destination: str, listed: bool) -> None:
    assert egress_log.on_list(destination, [".ingest.us.sentry.io:443",
                                            "api.openai.com:443"]) is listed
