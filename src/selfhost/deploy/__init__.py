"""``selfhost deploy``: a Profile's Plan onto real hosts through ansible-runner.

Public API::

    deploy(profile_path, DeployOptions(...), reporter=..., confirm=..., say=...)
        -> DeployResult
"""

from selfhost.deploy.service import DeployOptions, DeployResult, deploy

__all__ = ["DeployOptions", "DeployResult", "deploy"]
