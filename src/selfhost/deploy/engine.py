"""How ansible-playbook runs: Mitogen's strategy, or plain Ansible.

Mitogen for Ansible replaces the per-task module upload and Python start-up with
one long-lived interpreter per host, which makes a no-op redeploy several times
faster. Plain Ansible stays one switch away (``--engine plain`` or
``SELFHOST_ANSIBLE_ENGINE=plain``) for a host where Mitogen misbehaves. Both
engines use pipelining and ssh connection reuse.
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path
from typing import Literal, get_args

from selfhost.errors import InvalidInput, PrerequisiteMissing
from selfhost.paths import ANSIBLE_DIR

Engine = Literal["mitogen", "plain"]
ENGINES: tuple[str, ...] = get_args(Engine)
ENGINE_ENV = "SELFHOST_ANSIBLE_ENGINE"
DEFAULT_ENGINE: Engine = "mitogen"


def choose(engine: str | None) -> Engine:
    """The engine asked for, else ``$SELFHOST_ANSIBLE_ENGINE``, else Mitogen."""
    value = engine or os.environ.get(ENGINE_ENV) or DEFAULT_ENGINE
    if value == "mitogen":
        return "mitogen"
    if value == "plain":
        return "plain"
    source = "--engine" if engine else ENGINE_ENV
    raise InvalidInput(f"{source} {value!r} is not an engine (choose {' or '.join(ENGINES)})")


def mitogen_strategy_dir() -> Path:
    spec = find_spec("ansible_mitogen")
    if spec is None or not spec.submodule_search_locations:
        raise PrerequisiteMissing(
            "the mitogen package is not installed (pip install mitogen, or deploy with "
            f"--engine plain / {ENGINE_ENV}=plain)")
    return Path(next(iter(spec.submodule_search_locations))) / "plugins" / "strategy"


def ansible_env(engine: Engine, config: Path) -> dict[str, str]:
    """Environment for the ansible-playbook process: the playbook's ``ansible.cfg``
    (pipelining, ssh ControlPersist, no retry files) and the engine's strategy."""
    env = {
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_NOCOLOR": "True",
        # ansible-runner turns host key checking off unless told otherwise; a
        # deployment must never trust a host it cannot authenticate.
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        # the ``selfhost_secret`` lookup the roles read their secrets with
        "ANSIBLE_LOOKUP_PLUGINS": str(ANSIBLE_DIR / "lookup_plugins"),
    }
    if engine == "mitogen":
        env["ANSIBLE_STRATEGY_PLUGINS"] = str(mitogen_strategy_dir())
        env["ANSIBLE_STRATEGY"] = "mitogen_linear"
    else:
        env["ANSIBLE_STRATEGY"] = "linear"
    return env
