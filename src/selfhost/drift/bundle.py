"""What ``selfhost deploy`` hands the drift role: the host-side code and each host's checks.

The code is the part of this package the host-side run imports (the collector,
the components' checks, :mod:`selfhost.drift.host`), copied as source; verify's
package ``__init__`` is replaced by a docstring, since the real one imports the
controller's side (pytest, pydantic). Each host's config holds its checks with
the Plan's values, as verify generates them, and the collection spec.
"""

from __future__ import annotations

import base64
import json
from importlib.resources import files
from typing import Any

from selfhost.drift.host import encode_params
from selfhost.plan import Plan
from selfhost.verify import components
from selfhost.verify.components import egress

#: the modules the host-side run imports, relative to the ``selfhost`` package
SHIPPED = ("__init__.py", "drift/__init__.py", "drift/host.py", "verify/contract.py",
           "verify/collector.py", "verify/remote_base.py", "verify/egress_log.py",
           "verify/nft_rules.py", "verify/proxy_conf.py")
VERIFY_INIT = '"""The checks of selfhost verify, as the drift watch runs them on a host."""\n'


def code() -> dict[str, str]:
    """Relative path (under the code directory) -> source."""
    root = files("selfhost")
    names = [*SHIPPED, *(f"verify/components/{p.name}" for p in
                         sorted(root.joinpath("verify/components").iterdir(),
                                key=lambda p: p.name) if p.name.endswith(".py"))]
    out = {f"selfhost/{n}": root.joinpath(n).read_text(encoding="utf-8") for n in names}
    out["selfhost/verify/__init__.py"] = VERIFY_INIT
    return out


def host_config(plan: Plan, host_name: str) -> dict[str, Any]:
    """One host's checks and collection spec. Without direct targets: the host aims
    at no other host on its own (verify from the controller does)."""
    target = next(h for h in plan.hosts if h.name == host_name)
    checks = [c for c in components.generate(plan) if c.host == host_name]
    spec = components.host_spec(plan, target)
    section = spec.get("egress")
    probes = section.get("destinations", []) if isinstance(section, dict) else []
    return {
        "host": host_name,
        "checks": [{"def": c.definition.id, "suffix": c.suffix,
                    "description": c.description, "expected": c.expected, "fix": c.fix,
                    "params": encode_params(c.params)} for c in checks],
        "spec": spec,
        # the checks' own proxy probes are refused by design: not a denial to report
        "probes": sorted({*probes, egress.UNLISTED_DESTINATION}),
        "certificate": plan.layout.tls_cert,
        "backup_dir": str(plan.backups["directory"]) if "backup" in target.components else None,
    }


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def extravars(plan: Plan) -> dict[str, Any]:
    """Both base64-encoded: Ansible would read ``{{`` in a source or a check's text
    as a template; the role decodes them."""
    return {"code": {path: _b64(source) for path, source in code().items()},
            "hosts": {h.name: _b64(json.dumps(host_config(plan, h.name), sort_keys=True))
                      for h in plan.hosts}}
