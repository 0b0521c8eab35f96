"""``selfhost deploy``: a Profile's Plan onto real hosts through ansible-runner.

Public API::

    deploy(profile_path, DeployOptions(inventory=, sandbox=, check=, limit=, yes=,
           engine=, timeout=, passphrase=, key_file=, keep_artifacts=),
           reporter=, confirm=, say=) -> DeployResult
    prepare(profile_path, DeployOptions) -> Prepared   (inventory, extra vars, secret env)

Modules: ``service`` (the flow), ``runner`` (the only user of ansible_runner),
``launcher`` (secrets into ansible-playbook's environment), ``secrets_env``,
``engine`` (Mitogen or plain), ``events``/``progress`` (what is shown), ``redact``
(hiding and finding secret values), ``record``/``delta`` (the deployment record and
the subprocessor change). The hosts come from :mod:`selfhost.targets`; the
walk-through is :mod:`selfhost.workflows.demo`. The public names are imported on
first use (:mod:`selfhost.lazy`), so a light submodule stays light.
"""

from typing import TYPE_CHECKING

from selfhost import lazy

if TYPE_CHECKING:
    from selfhost.deploy.service import DeployOptions, DeployResult, Prepared, deploy, prepare
else:
    __getattr__ = lazy.exports(__name__, dict.fromkeys(
        ("DeployOptions", "DeployResult", "Prepared", "deploy", "prepare"),
        "selfhost.deploy.service"))

__all__ = ["DeployOptions", "DeployResult", "Prepared", "deploy", "prepare"]
