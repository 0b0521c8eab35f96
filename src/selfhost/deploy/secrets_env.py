"""The secrets a Plan needs, as the ``SELFHOST_SECRET_*`` names the roles read
(with the ``selfhost_secret`` lookup)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from selfhost.errors import SecretsError
from selfhost.models import host_token
from selfhost.plan import Plan
from selfhost.secrets import env_name, secrets_path

PREFIX = "SELFHOST_SECRET_"


def var_name(secret: str) -> str:
    return PREFIX + secret.upper()


def build_env(plan: Plan, secrets: Mapping[str, str], host_keys: Mapping[str, str],
              *, profile_path: Path, key_env: Mapping[str, str] | None = None
              ) -> dict[str, str]:
    """Every secret of ``plan.secrets_required`` and every host's TLS key, by variable.

    ``key_env`` maps host keys to their variables (the PKI's own naming); without it
    the README's rule is applied. A missing secret is an error naming how to add it.
    """
    stored = set(secrets)
    missing = [s for s in plan.secrets_required if s.name not in stored]
    if missing:
        where = secrets_path(profile_path)
        lines = []
        for spec in missing:
            if spec.source == "supplied":
                lines.append(f"{spec.name}: supply it with `selfhost init --force {profile_path}` "
                             f"(asked for, or read from {env_name(spec.name)})")
            else:
                lines.append(f"{spec.name}: generate it with `selfhost init --force "
                             f"{profile_path}`")
        raise SecretsError(f"{where} lacks secret(s) this profile needs:\n  "
                           + "\n  ".join(lines))
    env = {var_name(spec.name): secrets[spec.name] for spec in plan.secrets_required}
    if key_env is not None:
        env.update(key_env)
    else:
        for host, key in host_keys.items():
            env[PREFIX + "TLS_KEY_" + host_token(host)] = key
    return env
