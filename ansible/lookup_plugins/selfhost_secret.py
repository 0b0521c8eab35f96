"""selfhost_secret: a deployment secret by its variable name (``SELFHOST_SECRET_*``).

`selfhost deploy` hands ansible-playbook its secrets in an anonymous memory
file whose descriptor number is in ``SELFHOST_SECRETS_FD`` (see
``selfhost.deploy.launcher``), never in an environment: whatever ansible-playbook
starts (ssh, ssh masters that outlive the run) inherits its environment, but
not that descriptor. Forked workers inherit the descriptor and read it here.

Without ``SELFHOST_SECRETS_FD`` (the playbook run by hand) the variable of the
same name in the environment is used.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: selfhost_secret
short_description: read a deployment secret handed over by selfhost deploy
description:
  - Returns the value of each named secret (e.g. C(SELFHOST_SECRET_DATABASE_PASSWORD)),
    read from the memory file named by C(SELFHOST_SECRETS_FD), else from the
    environment variable of that name; an empty string when it is not there.
options:
  _terms:
    description: names of the secrets (their C(SELFHOST_SECRET_*) variable names)
    required: true
"""

FD_ENV = "SELFHOST_SECRETS_FD"
_LIMIT = 16 * 1024 * 1024


def _handed_over() -> dict[str, str] | None:
    number = os.environ.get(FD_ENV, "")
    if not number:
        return None
    try:
        fd = int(number)
        raw = os.pread(fd, _LIMIT, 0)
        data = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise AnsibleLookupError(f"cannot read the deployment secrets from descriptor "
                                 f"{number} ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise AnsibleLookupError("the deployment secrets are not a mapping")
    return {str(k): str(v) for k, v in data.items()}


class LookupModule(LookupBase):  # type: ignore[misc]
    def run(self, terms: list[Any], variables: Any = None, **kwargs: Any) -> list[str]:
        secrets = _handed_over()
        source = os.environ if secrets is None else secrets
        return [source.get(str(term), "") for term in terms]
