"""The nginx site template quotes every value it is given, so none can end its
directive or start another, even one the controller-side checks let through."""

from __future__ import annotations

import re

import jinja2
from ansible.plugins.filter.core import FilterModule

from selfhost.paths import ANSIBLE_DIR

TEMPLATE = ANSIBLE_DIR / "roles" / "nginx" / "templates" / "backend-chat.conf.j2"
CRAFTED = 'chat.example.com;\n    return 200 "owned";\n    location /x { root /'


def _render(**override: object) -> str:
    # As Ansible renders templates: trim_blocks on.
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                             trim_blocks=True)
    env.filters.update(FilterModule().filters())
    values: dict[str, object] = {
        "ansible_managed": "managed", "nginx_ipv6": False, "nginx_domain": "chat.example.com",
        "nginx_ssl_protocols": "TLSv1.3", "nginx_ssl_ecdh_curve": "X25519",
        "nginx_tls12_ciphers": "x", "nginx_certificate": "/etc/nginx/tls/server.crt",
        "nginx_certificate_key": "/etc/nginx/tls/server.key", "nginx_hsts_max_age": 1,
        "nginx_content_security_policy": "default-src 'self'",
        "nginx_client_max_body_size": "25m", "nginx_healthz_allow": ["127.0.0.1"],
        "nginx_app_port": 8000, "nginx_drain_flag": "/etc/nginx/backend-chat.drained"}
    values.update(override)
    return env.from_string(TEMPLATE.read_text()).render(values)


def _returns(text: str) -> list[str]:
    return re.findall(r"(?m)^\s*return\s+(\S+)", text)


def test_the_site_names_its_domain_quoted() -> None:
    text = _render()
    assert ('server_name "chat.example.com";' in text,
            'return 301 https://"chat.example.com"$request_uri;' in text,
            "return 301 https://chat.example.com$request_uri;" in text) == (True, False, True)


def test_a_crafted_domain_starts_no_directive() -> None:
    text = _render(nginx_domain=CRAFTED)
    # Only the site's own returns (444 twice, 301 once, /readyz's 503 and 200): none
    # from the value.
    assert (_returns(text), "location /x" in text.replace('"', "")) == (
        ["444;", "444;", "301", "503", "200"], True)
    assert 'server_name "chat.example.com;    return 200 \\"owned\\";' in text


def test_a_value_cannot_reach_an_nginx_variable() -> None:
    text = _render(nginx_content_security_policy="default-src $http_x_evil")
    assert 'add_header Content-Security-Policy "default-src http_x_evil" always;' in text


def test_a_backslash_cannot_escape_the_closing_quote() -> None:
    text = _render(nginx_certificate='/etc/x\\";\n ssl_verify_client off')
    assert 'ssl_certificate "/etc/x\\\\\\"; ssl_verify_client off";' in text
