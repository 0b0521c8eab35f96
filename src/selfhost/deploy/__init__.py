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
the subprocessor change). The hosts come from
:mod:`selfhost.targets`; the walk-through is :mod:`selfhost.workflows.demo`.
"""

from selfhost.deploy.service import DeployOptions, DeployResult, Prepared, deploy, prepare

__all__ = ["DeployOptions", "DeployResult", "Prepared", "deploy", "prepare"]
