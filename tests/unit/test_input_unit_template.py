"""The app's systemd unit template escapes every value it is given, so none can
start a directive of its own, even one the controller-side checks let through."""

from __future__ import annotations

import jinja2
from ansible.plugins.filter.core import FilterModule

from selfhost.paths import ANSIBLE_DIR

TEMPLATE = ANSIBLE_DIR / "roles" / "app" / "templates" / "backend-chat.service.j2"


def _render(description: str, argv: list[str]) -> list[str]:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters.update(FilterModule().filters())
    text = env.from_string(TEMPLATE.read_text()).render(
        ansible_managed="managed", app_description=description, app_exec=argv,
        app_notify=False, app_workdir="/opt/backend-chat/current",
        app_direct_addresses=["192.0.2.20"], app_hosts_file="/etc/backend-chat/hosts",
        app_resolv_file="/etc/backend-chat/resolv.conf", app_user="backendchat",
        app_env_file="/etc/backend-chat/app.env", app_state_dir="/var/lib/backend-chat",
        selfhost_plan={"app": {"port": 8000}})
    return text.splitlines()


def _directives(lines: list[str]) -> list[str]:
    return [line.partition("=")[0] for line in lines if "=" in line and line[:1] != "#"]


def test_a_newline_in_the_description_adds_no_directive() -> None:
    lines = _render("backend.chat 1.0\nExecStartPre=+/bin/sh -c id", ["/opt/app"])
    assert "ExecStartPre" not in _directives(lines)
    assert "Description=backend.chat 1.0 ExecStartPre=+/bin/sh -c id" in lines


def test_a_specifier_in_the_description_stays_text() -> None:
    assert "Description=backend.chat %%n" in _render("backend.chat %n", ["/opt/app"])


def test_a_newline_in_an_argument_adds_no_directive() -> None:
    lines = _render("backend.chat", ["/opt/app", "serve\nExecStartPre=+/bin/sh"])
    assert "ExecStartPre" not in _directives(lines)
    assert 'ExecStart="/opt/app" "serve\\nExecStartPre=+/bin/sh"' in lines
