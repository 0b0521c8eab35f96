"""``selfhost verify``: prove the live hosts match the Plan, and the list matches the hosts.

Public API::

    verify(profile_path, *, inventory=None, sandbox=None, junit=None, json_path=None,
           on_result=None) -> VerifyResult
    reconcile(profile_path, *, inventory=None, sandbox=None) -> Reconciliation

Checks are generated from the Plan (:func:`selfhost.verify.components.generate`; one
module per component under :mod:`selfhost.verify.components`),
run as a testinfra suite (one pytest test per check and host) and reported by
component (:mod:`selfhost.verify.report`).
"""

from selfhost.verify.report import CheckResult, VerifyResult, summary
from selfhost.verify.service import verify

__all__ = ["CheckResult", "VerifyResult", "summary", "verify"]
