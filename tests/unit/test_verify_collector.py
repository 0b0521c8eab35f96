"""The remote collector: one script assembled from every component's sections."""

from __future__ import annotations

import base64
import inspect
import json
import subprocess
import sys

from selfhost.verify import collector
from selfhost.verify.components import SECTIONS, remote_command
from selfhost.verify.contract import Fragment


def _namespace() -> dict[str, object]:
    """The names the assembled script defines, without running its entry point."""
    source = collector.script(SECTIONS).rsplit("\nmain(", 1)[0]
    namespace: dict[str, object] = {"__name__": "selfhost_facts"}
    exec(compile(source, "selfhost_facts", "exec"), namespace)
    return namespace


def test_every_name_a_shipped_function_uses_is_defined_on_the_host() -> None:
    namespace = _namespace()
    missing = {}
    for section in SECTIONS:
        for fn in (*section.helpers, section.collect):
            used = inspect.getclosurevars(fn)
            absent = sorted(n for n in used.globals if n not in namespace)
            if absent:
                missing[fn.__name__] = absent
    assert missing == {}


def test_the_script_collects_one_json_object_in_one_run() -> None:
    # Only the shared, read-only sections: they look at this machine's /proc.
    spec = collector.merge([Fragment(files=["/"])])
    command = remote_command(spec)
    argv = [sys.executable, "-c", command.split('"')[1], *command.split('" ')[1].split()]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    facts = json.loads(done.stdout)
    assert (sorted(facts), facts["files"]["/"]["dir"], facts["files"]["/"]["owner"]) == (
        ["files", "listeners", "processes", "units"], True, "root")


def test_the_spec_travels_as_base64_arguments() -> None:
    spec = collector.merge([Fragment(sections={"record": "/etc/x'; rm -rf /"})])
    command = remote_command(spec)
    payload = command.rsplit(" ", 1)[1]
    assert json.loads(base64.b64decode(payload))["record"] == "/etc/x'; rm -rf /"
    assert "rm -rf" not in command
