"""`selfhost --help` loads no heavy library: the commands import their services
when they run. (How fast that is, is measured by bench/cli_bench.py, not here.)"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap

import pytest

#: what a command may need but ``--help`` never does
HEAVY = ("ansible", "ansible_runner", "cryptography", "jinja2", "mitogen", "pydantic",
         "rich", "ruamel", "testinfra", "weasyprint", "importlib.metadata")

#: in a fresh interpreter: each command's --help, and the heavy modules it loaded
_PROBE = textwrap.dedent("""
    import json, sys
    import click
    from selfhost.cli import main
    heavy = json.loads(sys.argv[1])

    def walk(command, path=()):
        yield path
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, (*path, name))

    def loaded():
        return {m for m in sys.modules if m in heavy or m.split(".")[0] in heavy}

    before = loaded()
    seen = {"import selfhost.cli": sorted(before)}
    for path in list(walk(main)):
        try:
            main([*path, "--help"], prog_name="selfhost")
        except SystemExit:
            pass
        now = loaded()
        seen[" ".join(("selfhost", *path, "--help"))] = sorted(now - before)
        before = now
    print(json.dumps(seen))
""")


@pytest.fixture(scope="module")
def loaded_after() -> dict[str, list[str]]:
    run = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(HEAVY)],
                         capture_output=True, text=True, check=True, timeout=120)
    result: dict[str, list[str]] = json.loads(run.stdout.splitlines()[-1])
    return result


def test_every_command_was_asked_for_its_help(loaded_after: dict[str, list[str]]) -> None:
    assert {"selfhost --help", "selfhost deploy --help", "selfhost verify --help",
            "selfhost subprocessors render --help", "selfhost sandbox up --help",
            "selfhost keys generate --help"} <= set(loaded_after)


def test_help_loads_no_heavy_library(loaded_after: dict[str, list[str]]) -> None:
    assert {step: mods for step, mods in loaded_after.items() if mods} == {}


#: what each package that exports lazily (selfhost.lazy) promises, and where it lives
LAZY = {
    "selfhost.deploy": dict.fromkeys(
        ("DeployOptions", "DeployResult", "Prepared", "deploy", "prepare"),
        "selfhost.deploy.service"),
    "selfhost.sandbox": {
        **dict.fromkeys(("down", "down_all", "list_sandboxes", "load", "up"),
                        "selfhost.sandbox.lifecycle"),
        **dict.fromkeys(("Guest", "Sandbox"), "selfhost.sandbox.models"),
        **dict.fromkeys(("DEFAULT_RELEASE", "IMAGES", "RELEASES"), "selfhost.sandbox.rootfs")},
}


@pytest.mark.parametrize("package", sorted(LAZY))
def test_a_lazy_package_still_exports_its_names(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(LAZY[package])
    for name, home in LAZY[package].items():
        assert getattr(module, name) is getattr(importlib.import_module(home), name), name
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'nosuch'"):
        module.nosuch  # noqa: B018
