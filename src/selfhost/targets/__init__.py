"""Which hosts a deployment is on, and how they are reached: the one answer that
``deploy`` and ``verify`` share.

Public API::

    resolve_target(profile, *, inventory_file=None, sandbox=None, source=None) -> Target
    resolve(profile_path, *, inventory=None, sandbox=None) -> Deployment

The hosts come from one of three places: the profile's own addresses, an Ansible
inventory file (``--inventory``) or a sandbox's guests (``--sandbox``), with the
profile's ssh user and become. Modules: ``inventory`` (the Ansible inventory of a
Plan), ``service`` (the resolution, and each host as ssh reaches it).
"""

from selfhost.targets.service import Deployment, SshTarget, Target, resolve, resolve_target

__all__ = ["Deployment", "SshTarget", "Target", "resolve", "resolve_target"]
