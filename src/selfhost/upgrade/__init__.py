"""``selfhost upgrade`` and ``selfhost rollback``: a signed release over the running one,
with a pre-upgrade database dump, migrations once, app hosts switched one at a time and
an automatic rollback on any failure.

Public API::

    upgrade(profile_path, UpgradeOptions(release=, inventory=, sandbox=, check=, ...),
            step=) -> UpgradeResult
    rollback(profile_path, RollbackOptions(...), confirm=, step=) -> RollbackResult

The playbook is ``ansible/upgrade.yml`` (one action per run); the controller decides
the order and what to roll back (:mod:`selfhost.upgrade.service`).
"""
